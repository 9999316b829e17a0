#!/usr/bin/env node
// `node bench/peer/targets.mjs [RESULTS_DIR | FILE...]`: the guest agent's targets (issue #17)
// checked against one bench:peer run: each figure per round (a round is qemu-ga then ours, run
// back to back), the ratio of ours to qemu-ga's in that round, and the median over the rounds.
// bench:peer prints it after the harness's report. The machine is shared and noisy; with
// `--rounds N` the agents alternate N times and the medians are what the targets are held to.
// Exits 0 whether or not targets are met (it reports; it does not judge a build).
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const MiB = 1024;
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Result files by agent and round: {qemu-ga: [r1, r2...], limiquantix: [...]}. */
export function load(args) {
  const files =
    args.length === 1 && !args[0].endsWith('.json')
      ? readdirSync(args[0])
          .filter((f) => f.endsWith('.json'))
          .map((f) => join(args[0], f))
      : args;
  const byAgent = { 'qemu-ga': [], limiquantix: [] };
  for (const file of files) {
    const m = /^(qemu-ga|limiquantix)(-quick)?(?:-(\d+))?\.json$/.exec(basename(file));
    if (m) {
      byAgent[m[1]][Number(m[3] ?? 1) - 1] = JSON.parse(readFileSync(file, 'utf8'));
    }
  }
  return byAgent;
}

const chunk = (r, phase, bytes) => r.phases?.[phase]?.[`chunk_${bytes}`]?.MBps?.median;
// Figures compared with qemu-ga's: [label, unit, value(result), target ratio, lower is better].
const RATIOS = [
  [
    'exec /bin/true with its result',
    'ms',
    (r) => r.phases?.exec_true?.endToEndMs?.median,
    1.0,
    true,
  ],
  [
    'agent CPU per exec',
    'ms',
    (r) => r.phases?.exec_true?.agentCpuMs / r.phases?.exec_true?.runs,
    1.0,
    true,
  ],
  ['ping round trip', 'µs', (r) => r.phases?.ping_sequential?.latencyUs?.median, 1.1, true],
  ['osinfo', 'µs', (r) => r.phases?.info?.osinfo?.latencyUs?.median, 1.5, true],
  ['fsinfo', 'µs', (r) => r.phases?.info?.fsinfo?.latencyUs?.median, 1.5, true],
  ['file read, 4 KiB per call', 'MB/s', (r) => chunk(r, 'file_read', 4096), 1.0, false],
  ['file read, 1 MiB per call', 'MB/s', (r) => chunk(r, 'file_read', 1 << 20), 3.0, false],
  ['file write, 1 MiB per call', 'MB/s', (r) => chunk(r, 'file_write', 1 << 20), 10.0, false],
];
// Figures of ours alone: [label, unit, value(result), bound].
const BOUNDS = [
  ['start → first pong', 'ms', (r) => r.phases?.startup?.spawnToFirstPingMs?.median, 100],
  ['idle RSS, 1 s after start', 'MiB', (r) => r.phases?.startup?.idleAfterStart?.rssKb / MiB, 40],
  ['RSS 1 s after the whole run', 'MiB', (r) => r.idle?.atEnd?.rssKb / MiB, 64],
  [
    'peak RSS during the 64 MiB transfers',
    'MiB',
    (r) =>
      Math.max(r.phases?.file_read?.peakRssKb ?? NaN, r.phases?.file_write?.peakRssKb ?? NaN) / MiB,
    160,
  ],
];

const fmt = (v) =>
  !Number.isFinite(v) ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);

export function targetsTable(byAgent) {
  const ours = byAgent.limiquantix.filter(Boolean);
  const theirs = byAgent['qemu-ga'];
  const rounds = ours.length;
  const lines = [
    `Targets (issue #17), ${rounds} round${rounds === 1 ? '' : 's'}: per round ours / qemu-ga = ratio; the median of the rounds' ratios is held to the target.`,
    '',
    '| figure | per round (ours / qemu-ga = ratio) | median ratio | target | met |',
    '| --- | --- | ---: | --- | --- |',
  ];
  let missed = 0;
  for (const [label, unit, value, target, lowerBetter] of RATIOS) {
    const ratios = [];
    const cells = byAgent.limiquantix.map((r, i) => {
      const q = theirs[i];
      if (!r || !q) return '–';
      const a = value(r);
      const b = value(q);
      const ratio = a / b;
      ratios.push(ratio);
      return `${fmt(a)} / ${fmt(b)} ${unit} = ${fmt(ratio)}×`;
    });
    const m = median(ratios);
    const met = Number.isFinite(m) && (lowerBetter ? m <= target : m >= target);
    missed += met ? 0 : 1;
    lines.push(
      `| ${label} | ${cells.join('; ')} | ${fmt(m)}× | ${lowerBetter ? '≤' : '≥'} ${target}× | ${met ? 'yes' : '**no**'} |`,
    );
  }
  for (const [label, unit, value, bound] of BOUNDS) {
    const values = ours.map(value);
    const m = median(values);
    const met = Number.isFinite(m) && m <= bound;
    missed += met ? 0 : 1;
    lines.push(
      `| ${label} | ${values.map((v) => `${fmt(v)} ${unit}`).join('; ')} | ${fmt(m)} ${unit} | ≤ ${bound} ${unit} | ${met ? 'yes' : '**no**'} |`,
    );
  }
  lines.push('', missed === 0 ? 'Every target met.' : `Targets missed: ${missed}.`);
  return lines.join('\n');
}

if (resolve(process.argv[1] ?? '') === resolve(new URL(import.meta.url).pathname)) {
  const args = process.argv.slice(2);
  let byAgent;
  try {
    byAgent = load(
      args.length > 0 ? args : [resolve(new URL('../results/peer', import.meta.url).pathname)],
    );
  } catch (err) {
    process.stderr.write(`targets: cannot read the results: ${err.message}\n`);
    process.exit(2);
  }
  if (byAgent.limiquantix.filter(Boolean).length === 0) {
    process.stderr.write('targets: no limiquantix results found\n');
    process.exit(2);
  }
  process.stdout.write(`${targetsTable(byAgent)}\n`);
}
