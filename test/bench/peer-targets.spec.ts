// bench/peer/targets.mjs: the agent's targets held to a bench:peer run's result files, per
// round and as the median of the rounds (what bench:peer prints after the harness's report).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';

const SCRIPT = resolve(import.meta.dirname, '../../bench/peer/targets.mjs');
const work = mkdtempSync(join(tmpdir(), 'lq-peer-targets-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A result file as the harness writes it, with the figures the targets read. */
function result(
  f: { execMs: number; pingUs: number; read4k: number; startMs: number },
  bulk = { read1m: 300, write1m: 400 },
) {
  const mbps = (median: number) => ({ MBps: { median } });
  return {
    phases: {
      startup: { spawnToFirstPingMs: { median: f.startMs }, idleAfterStart: { rssKb: 30 * 1024 } },
      ping_sequential: { latencyUs: { median: f.pingUs } },
      exec_true: { endToEndMs: { median: f.execMs }, agentCpuMs: 1500, runs: 1500 },
      info: { osinfo: { latencyUs: { median: 60 } }, fsinfo: { latencyUs: { median: 190 } } },
      file_read: {
        chunk_4096: mbps(f.read4k),
        chunk_1048576: mbps(bulk.read1m),
        peakRssKb: 100 * 1024,
      },
      file_write: { chunk_1048576: mbps(bulk.write1m), peakRssKb: 90 * 1024 },
    },
    idle: { atEnd: { rssKb: 45 * 1024 } },
  };
}

function run(...args: string[]) {
  return spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8' });
}

describe('bench:peer targets', () => {
  it('should hold the median of the rounds to each target and say which are missed', () => {
    const write = (name: string, r: object) => writeFileSync(join(work, name), JSON.stringify(r));
    const qga = { execMs: 5, pingUs: 50, read4k: 50, startMs: 10 };
    const qgaBulk = { read1m: 60, write1m: 30 };
    write('qemu-ga-1.json', result(qga, qgaBulk));
    write('qemu-ga-2.json', result(qga, qgaBulk));
    write('qemu-ga-3.json', result(qga, qgaBulk));
    // 4 KiB reads: 0.9×, 1.1×, 1.2× (median 1.1×, met); ping: 1.2×, 1.2×, 0.9× (median 1.2×, not).
    write('limiquantix-1.json', result({ execMs: 2.5, pingUs: 60, read4k: 45, startMs: 60 }));
    write('limiquantix-2.json', result({ execMs: 2.5, pingUs: 60, read4k: 55, startMs: 70 }));
    write('limiquantix-3.json', result({ execMs: 2.5, pingUs: 45, read4k: 60, startMs: 200 }));
    const r = run(work);
    expect(r.status).toBe(0);
    const row = (label: string) => r.stdout.split('\n').find((l) => l.startsWith(`| ${label} |`));
    expect(r.stdout).toContain('3 rounds');
    expect(row('file read, 4 KiB per call')).toMatch(/\| 1\.10× \| ≥ 1× \| yes \|$/);
    expect(row('ping round trip')).toMatch(/\| 1\.20× \| ≤ 1\.1× \| \*\*no\*\* \|$/);
    expect(row('exec /bin/true with its result')).toContain('2.50 / 5.00 ms = 0.50×');
    expect(row('start → first pong')).toMatch(/\| 70\.0 ms \| ≤ 100 ms \| yes \|$/);
    expect(r.stdout).toContain('Targets missed: 1.');
  });

  it('should refuse a folder it cannot read, or one without our results, with a clear error', () => {
    const missing = run(join(work, 'nothing-here'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/targets: cannot read the results: ENOENT/);
    const empty = mkdtempSync(join(work, 'empty-'));
    expect(run(empty).stderr).toContain('targets: no limiquantix results found');
  });
});
