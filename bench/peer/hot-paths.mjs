#!/usr/bin/env node
// `node bench/peer/hot-paths.mjs [--rounds N] [--n N] [--phases ...] [--agent EXE]...`: the agent's
// per-request cost beside qemu-ga's on the hot paths bench:peer reports (ping, os.info, fs.info,
// 4 KiB and 1 MiB handle reads, 1 MiB writes, exec /bin/true; on request `file4k`, bench:peer's
// whole-file 4 KiB reads): the median round trip and the agent's CPU per
// operation, agents alternated round by round (the machine is shared and noisy: compare medians).
// Each --agent names an executable of ours to measure (default: the one bench:peer builds), so
// two builds can be compared in one run. Needs the build bench:peer makes.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { values } = parseArgs({
  options: {
    harness: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    n: { type: 'string', default: '1500' },
    phases: { type: 'string', default: 'ping,osinfo,fsinfo,read4k,read1m,write1m,exec' },
    agent: { type: 'string', multiple: true },
    'skip-qemu-ga': { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const harness = resolve(
  values.harness ?? process.env.LQ_PEER_BENCH ?? join(REPO, '../shared/peer-bench/qemu-ga'),
);
if (!existsSync(join(harness, 'bench.mjs'))) {
  process.stderr.write(`hot-paths: no peer-bench harness at ${harness}\n`);
  process.exit(2);
}
const ours = (values.agent ?? [join(REPO, 'dist/agent/limiquantix-agent-linux-amd64')]).map((a) =>
  resolve(a),
);
const work = mkdtempSync(join(tmpdir(), 'lq-hot-paths-'));
const copy = join(work, 'harness');
cpSync(harness, copy, { recursive: true });
cpSync(join(REPO, 'bench/peer/hot-loop.mjs'), join(copy, 'hot-loop.mjs'));
const runs = [];
const runOne = (label, adapter, env) => {
  const load = loadavg()[0].toFixed(2);
  const r = spawnSync(
    process.execPath,
    [join(copy, 'hot-loop.mjs'), '--agent', adapter, '--n', values.n, '--phases', values.phases],
    { cwd: copy, encoding: 'utf8', env: { ...process.env, ...env } },
  );
  if (r.status !== 0) {
    process.stderr.write(`hot-paths: ${label} failed:\n${r.stdout}${r.stderr}\n`);
    return;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  runs.push({ label, load, ...out });
  process.stderr.write(`hot-paths: ${label} (load ${load}) ${JSON.stringify(out)}\n`);
};
try {
  for (let round = 1; round <= rounds; round++) {
    if (!values['skip-qemu-ga']) {
      runOne('qemu-ga', join(copy, 'agents/qemu-ga.mjs'), {});
    }
    for (const exe of ours) {
      runOne(exe, join(REPO, 'bench/peer/limiquantix-adapter.mjs'), { LQ_PEER_AGENT: exe });
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
};
const labels = [...new Set(runs.map((r) => r.label))];
const phases = values.phases.split(',');
const lines = ['| agent | loads | ' + phases.map((p) => `${p} µs / CPU µs`).join(' | ') + ' |'];
lines.push(`| --- | --- | ${phases.map(() => '---:').join(' | ')} |`);
for (const label of labels) {
  const mine = runs.filter((r) => r.label === label);
  const cells = phases.map((p) => {
    const rt = median(mine.map((r) => r[p]?.medUs));
    const cpu = median(mine.map((r) => r[p]?.cpuUsPerOp));
    return `${rt.toFixed(0)} / ${cpu.toFixed(0)}`;
  });
  lines.push(`| ${label} | ${mine.map((r) => r.load).join(', ')} | ${cells.join(' | ')} |`);
}
// file4k's passes, run by run: where a rate comes from (the median call, or the slow calls).
for (const r of runs.filter((x) => x.file4k?.passes)) {
  lines.push(
    `${r.label} file4k passes: ` +
      r.file4k.passes
        .map(
          (x) =>
            `${x.MBps} MB/s (median call ${x.medCallUs} µs, tail +${x.tailUsPerCall} µs/call from ${x.slowCalls} calls over twice the median, CPU agent ${x.agentCpuUs} / harness ${x.hostCpuUs} µs/call)`,
        )
        .join('; '),
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
