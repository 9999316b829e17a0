// bench:peer's adapter (bench/peer/limiquantix-adapter.mjs) drives our agent for the peer
// harness; it is not otherwise run by npm test, and it once broke unnoticed when AgentClient
// moved to libs/host. This runs it the way the harness does (from a folder holding
// agents/proc.mjs) against the compiled agent: start, ping, exec, a file round trip, info, stop.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';

const REPO = resolve(import.meta.dirname, '../..');
const HARNESS = resolve(process.env.LQ_PEER_BENCH ?? join(REPO, '../shared/peer-bench/qemu-ga'));
const work = mkdtempSync(join(tmpdir(), 'lq-peer-adapter-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

const CHECK = `
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
const A = await import(process.env.ADAPTER);
const dir = join(process.env.WORK, 'agent');
mkdirSync(dir, { recursive: true });
const h = A.start({ dir });
let s;
for (const end = Date.now() + 60_000; !s; ) {
  try { s = await A.connect(h); } catch (e) { if (Date.now() > end) throw e; await new Promise((r) => setTimeout(r, 50)); }
}
await s.ping();
const id = await s.exec('/bin/echo', ['hi']);
const st = await s.execStatus(id);
const w = await s.fileOpen(join(dir, 'f'), 'w');
await s.fileWrite(w, Buffer.from('round trip'));
await s.fileClose(w);
const r = await s.fileOpen(join(dir, 'f'), 'r');
const data = (await s.fileRead(r, 4096)).data.toString();
const os = await s.info('osinfo');
const fs = await s.info('fsinfo');
await s.close();
await A.stop(h);
console.log(JSON.stringify({ version: A.version(), exit: st.exitcode, out: st.stdout.toString(), data, os: typeof os, fs: Array.isArray(fs.filesystems) }));
`;

describe('bench:peer adapter', () => {
  const present = existsSync(join(HARNESS, 'agents/proc.mjs'));
  if (!present) {
    // The harness lives beside the repository (../shared/peer-bench), not in it.
    process.stderr.write(`[bench:peer adapter] skipped: no peer harness at ${HARNESS}\n`);
  }
  (present ? it : it.skip)('should drive the compiled agent as the peer harness does', () => {
    const copy = join(work, 'harness');
    cpSync(HARNESS, copy, { recursive: true });
    writeFileSync(join(copy, 'check.mjs'), CHECK);
    const r = spawnSync(process.execPath, [join(copy, 'check.mjs')], {
      cwd: copy,
      encoding: 'utf8',
      env: {
        ...process.env,
        ADAPTER: join(REPO, 'bench/peer/limiquantix-adapter.mjs'),
        WORK: work,
      },
      timeout: 120_000,
    });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      version: expect.stringMatching(/^limiquantix-agent /),
      exit: 0,
      out: 'hi\n',
      data: 'round trip',
      os: 'object',
      fs: true,
    });
  });
});
