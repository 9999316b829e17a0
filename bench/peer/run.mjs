#!/usr/bin/env node
// `npm run bench:peer [-- --quick] [-- --rounds N] [-- --harness DIR]`: our guest agent and
// qemu-guest-agent measured by the same harness (../shared/peer-bench/qemu-ga by default), on
// this machine, in one run, alternating agents; prints the harness's side-by-side report and
// keeps the results under bench/results/peer/. The harness folder is read-only: it is copied.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
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
const withQemuGa = !values['skip-qemu-ga'];
if (withQemuGa && spawnSync('qemu-ga', ['--version']).status !== 0) {
  fail('qemu-ga is not installed (apt-get install qemu-guest-agent), or pass --skip-qemu-ga');
}

const work = mkdtempSync(join(tmpdir(), 'lq-peer-bench-'));
const copy = join(work, 'harness');
cpSync(harness, copy, { recursive: true });
rmSync(join(copy, 'results'), { recursive: true, force: true });
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
  const r = spawnSync(process.execPath, args, {
    cwd: copy,
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
