#!/usr/bin/env node
// `npm run bench:peer [-- --quick] [-- --rounds N] [-- --cpus any|split] [-- --harness DIR]`:
// our guest agent and qemu-guest-agent measured by the same harness
// (../shared/peer-bench/qemu-ga by default), on this machine, in one run, alternating agents;
// prints the harness's side-by-side report and keeps the results under bench/results/peer/.
// The harness folder is read-only: it is copied.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { load, targetsTable } from './targets.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const ADAPTER = join(REPO, 'bench/peer/limiquantix-adapter.mjs');

function fail(message) {
  process.stderr.write(`bench:peer: ${message}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      harness: { type: 'string' },
      rounds: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      'skip-qemu-ga': { type: 'boolean', default: false },
      cpus: { type: 'string', default: 'any' },
    },
  }));
} catch (err) {
  fail(err.message);
}
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10) {
  fail(`--rounds must be a whole number from 1 to 10 (got ${values.rounds})`);
}
const harness = resolve(
  values.harness ?? process.env.LQ_PEER_BENCH ?? join(REPO, '../shared/peer-bench/qemu-ga'),
);
if (!existsSync(join(harness, 'bench.mjs'))) {
  fail(`no peer-bench harness at ${harness} (bench.mjs missing): pass --harness DIR`);
}
if (!existsSync(join(REPO, 'dist/tsc/libs/proto/src/index.js'))) {
  fail('dist/tsc is missing: run `npm run build` first');
}
if (!['any', 'split'].includes(values.cpus)) {
  fail(`--cpus must be any or split (got ${values.cpus})`);
}
const split = values.cpus === 'split';
if (split && spawnSync('taskset', ['-c', '1', 'true']).status !== 0) {
  fail('--cpus split needs taskset (util-linux) and a second CPU');
}
const withQemuGa = !values['skip-qemu-ga'];
if (withQemuGa && spawnSync('qemu-ga', ['--version']).status !== 0) {
  fail('qemu-ga is not installed (apt-get install qemu-guest-agent), or pass --skip-qemu-ga');
}

const work = mkdtempSync(join(tmpdir(), 'lq-peer-bench-'));
const copy = join(work, 'harness');
cpSync(harness, copy, { recursive: true });
rmSync(join(copy, 'results'), { recursive: true, force: true });
// --cpus split: the harness (the host's side) on CPU 0; each agent, and what it runs, on CPU 1, as
// a host and a one-vCPU guest would be. Each agent starts through a shim that execs `taskset -c 1
// AGENT` (the PID stays the agent's). With --cpus any (the default) the scheduler places them:
// two processes passing a request back and forth run at about twice the rate when it puts them
// on one CPU than on two, and where it puts them changes from pass to pass (README, bench:peer).
const env = { ...process.env };
if (split) {
  const shims = join(work, 'shims');
  mkdirSync(shims);
  const quoted = (path) => `'${path.replaceAll("'", `'\\''`)}'`;
  const shim = (name, target) =>
    writeFileSync(join(shims, name), `#!/bin/sh\nexec taskset -c 1 ${quoted(target)} "$@"\n`, {
      mode: 0o755,
    });
  shim(
    'limiquantix-agent',
    resolve(process.env.LQ_PEER_AGENT ?? join(REPO, 'dist/agent/limiquantix-agent-linux-amd64')),
  );
  env.LQ_PEER_AGENT = join(shims, 'limiquantix-agent');
  if (withQemuGa) {
    const qemuGa = spawnSync('sh', ['-c', 'command -v qemu-ga'], { encoding: 'utf8' });
    shim('qemu-ga', qemuGa.stdout.trim());
    env.PATH = `${shims}:${env.PATH}`;
  }
}
const results = join(REPO, 'bench/results/peer');
mkdirSync(results, { recursive: true });
const suffix = values.quick ? '-quick' : '';
const files = [];
const run = (agent, name, round) => {
  const out = join(results, `${name}${suffix}${rounds > 1 ? `-${round}` : ''}.json`);
  const args = [
    join(copy, 'bench.mjs'),
    '--agent',
    agent,
    '--out',
    out,
    '--scratch',
    join(work, 'scratch'),
  ];
  if (values.quick) {
    args.push('--quick');
  }
  process.stderr.write(`bench:peer: ${name}, round ${round} of ${rounds}\n`);
  const [command, ...argv] = split
    ? ['taskset', '-c', '0', process.execPath, ...args]
    : [process.execPath, ...args];
  const r = spawnSync(command, argv, {
    cwd: copy,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.status !== 0) {
    fail(`${name} run failed (exit ${r.status}); see the output above`);
  }
  files.push(out);
};
try {
  for (let round = 1; round <= rounds; round++) {
    if (withQemuGa) {
      run(join(copy, 'agents/qemu-ga.mjs'), 'qemu-ga', round);
    }
    run(ADAPTER, 'limiquantix', round);
  }
  const report = spawnSync(process.execPath, [join(copy, 'report.mjs'), ...files], {
    cwd: copy,
    encoding: 'utf8',
  });
  process.stdout.write(report.stdout);
  if (report.status !== 0) {
    fail(`report failed: ${report.stderr}`);
  }
  // The agent's targets (issue #17) against this run's figures, per round and their median.
  process.stdout.write(`\n${targetsTable(load(files))}\n`);
  process.stderr.write(`bench:peer: results in ${results}: ${readdirSync(results).join(', ')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
