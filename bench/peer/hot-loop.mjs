// One agent's hot paths, run inside a copy of the peer-bench harness by bench/peer/hot-paths.mjs:
// per-operation median round trip and the agent's CPU per operation (utime+stime from /proc).
//   node hot-loop.mjs --agent ADAPTER [--n 2000] [--phases ping,osinfo,fsinfo,read4k,read1m,write1m,exec,file4k]
// file4k (not run by default: ~6 s per agent) is bench:peer's 4 KiB file_read: three whole passes
// over a 64 MiB file, MB/s per pass; LQ_FILE4K_IDLE_MS idles that long before each pass (as
// between bench:peer's phases, when the agent's idle reclaim runs). bigout (not by default either)
// runs what bench:peer runs before its file phases: commands with 10, 20 and 64 MiB of output.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { nowMs, sleep } from './stats.mjs';
import { isAlive } from './agents/proc.mjs';
const { values: opt } = parseArgs({
  options: {
    agent: { type: 'string' },
    n: { type: 'string', default: '2000' },
    phases: { type: 'string', default: 'ping,osinfo,fsinfo,read4k,read1m,write1m,exec' },
    scratch: { type: 'string', default: '/tmp/lq-hot-paths' },
  },
});
const N = Number(opt.n);
const adapter = await import(pathToFileURL(path.resolve(opt.agent)).href);
const DIR = path.join(opt.scratch, `hot-${adapter.name}-${process.pid}`);
fs.mkdirSync(DIR, { recursive: true });
const cpu = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};
const rss = (pid) =>
  Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1]) / 1024;
const med = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
};
const H = await adapter.start({ dir: DIR });
let S;
for (const t0 = nowMs(); nowMs() - t0 < 10000;) {
  if (!isAlive(H)) throw new Error('died');
  try {
    S = await adapter.connect(H);
    break;
  } catch {
    await sleep(2);
  }
}
await S.ping();
const file = path.join(DIR, 'data.bin');
fs.writeFileSync(file, crypto.randomBytes(16 * 1024 * 1024));
const out = { agent: adapter.name };
async function phase(name, count, fn) {
  for (let i = 0; i < Math.min(50, count); i++) await fn(); // warm-up
  const lat = [];
  const c0 = cpu(H.pid);
  const t0 = nowMs();
  for (let i = 0; i < count; i++) {
    const a = nowMs();
    await fn();
    lat.push((nowMs() - a) * 1000);
  }
  const wall = nowMs() - t0;
  const c = cpu(H.pid) - c0;
  out[name] = {
    medUs: +med(lat).toFixed(1),
    cpuUsPerOp: +((c * 1000) / count).toFixed(1),
    wallMs: Math.round(wall),
  };
}
for (const p of opt.phases.split(',')) {
  if (p === 'ping') await phase('ping', N, () => S.ping());
  if (p === 'osinfo') await phase('osinfo', N, () => S.info('osinfo'));
  if (p === 'fsinfo') await phase('fsinfo', Math.ceil(N / 4), () => S.info('fsinfo'));
  if (p === 'exec')
    await phase('exec', Math.ceil(N / 4), async () => {
      const id = await S.exec('/bin/true', []);
      for (;;) {
        const st = await S.execStatus(id);
        if (st.exited) break;
      }
    });
  if (p === 'read4k' || p === 'read1m') {
    const chunk = p === 'read4k' ? 4096 : 1 << 20;
    let h = await S.fileOpen(file, 'r');
    const calls = p === 'read4k' ? N * 2 : Math.ceil(N / 20);
    await phase(p, calls, async () => {
      const x = await S.fileRead(h, chunk);
      if (x.eof || x.count < chunk) {
        await S.fileClose(h);
        h = await S.fileOpen(file, 'r');
      }
    });
    out[p].MBps = +(chunk / 1e6 / (out[p].medUs / 1e6)).toFixed(1);
    await S.fileClose(h);
  }
  if (p === 'bigout') {
    // What bench:peer runs before its file phases: commands with tens of MiB of output.
    for (const n of [10_000_000, 20_000_000, 67_108_864]) {
      const id = await S.exec('/bin/sh', ['-c', `head -c ${n} /dev/zero`]);
      for (;;) {
        const st = await S.execStatus(id);
        if (st.exited) break;
        await sleep(2);
      }
    }
  }
  if (p === 'file4k') {
    // bench:peer's file_read at 4 KiB per call: whole passes over a 64 MiB file, each chunk
    // hashed, MB/s per pass (not per median call: the slow calls count). Per pass also: the
    // agent's and this harness's CPU per call, the median call, and how much the calls slower
    // than twice the median add to the mean (the tail, where the rates of two agents part).
    const big = path.join(DIR, 'data64m.bin');
    const data = crypto.randomBytes(64 * 1024 * 1024);
    fs.writeFileSync(big, data);
    const passes = [];
    const c0 = cpu(H.pid);
    let calls = 0;
    for (let pass = 0; pass < 3; pass++) {
      // As between bench:peer's phases: long enough for the agent's idle reclaim to run.
      await sleep(Number(process.env.LQ_FILE4K_IDLE_MS ?? 0));
      const agent0 = cpu(H.pid);
      const host0 = process.cpuUsage();
      const lat = [];
      const t0 = nowMs();
      const h = await S.fileOpen(big, 'r');
      const hash = crypto.createHash('sha256');
      for (;;) {
        const a = nowMs();
        const x = await S.fileRead(h, 4096);
        lat.push((nowMs() - a) * 1000);
        hash.update(x.data);
        if (x.eof || x.data.length === 0) break;
      }
      await S.fileClose(h);
      const wallMs = nowMs() - t0;
      const host = process.cpuUsage(host0);
      const n = lat.length;
      calls += n;
      const medCall = med(lat);
      const slow = lat.filter((us) => us >= 2 * medCall);
      passes.push({
        MBps: +(data.length / 1e6 / (wallMs / 1000)).toFixed(1),
        medCallUs: +medCall.toFixed(1),
        tailUsPerCall: +(slow.reduce((sum, us) => sum + us - medCall, 0) / n).toFixed(1),
        slowCalls: slow.length,
        agentCpuUs: +(((cpu(H.pid) - agent0) * 1000) / n).toFixed(1),
        hostCpuUs: +((host.user + host.system) / n).toFixed(1),
      });
    }
    const rate = med(passes.map((x) => x.MBps));
    out[p] = {
      medUs: +((4096 / 1e6 / rate) * 1e6).toFixed(1),
      cpuUsPerOp: +(((cpu(H.pid) - c0) * 1000) / calls).toFixed(1),
      MBps: rate,
      passes,
    };
    fs.rmSync(big);
  }
  if (p === 'write1m') {
    // 1 MiB per call into one file, as bench:peer's file_write; a new file every 16 MiB.
    const chunk = 1 << 20;
    const dst = path.join(DIR, 'write.bin');
    const data = crypto.randomBytes(chunk);
    let h = await S.fileOpen(dst, 'w');
    let written = 0;
    await phase(p, Math.ceil(N / 20), async () => {
      await S.fileWrite(h, data);
      written += chunk;
      if (written >= 16 * chunk) {
        await S.fileClose(h);
        h = await S.fileOpen(dst, 'w');
        written = 0;
      }
    });
    out[p].MBps = +(chunk / 1e6 / (out[p].medUs / 1e6)).toFixed(1);
    await S.fileClose(h);
  }
}
out.hwmMiB = +rss(H.pid).toFixed(1);
await S.close();
await adapter.stop(H);
fs.rmSync(DIR, { recursive: true, force: true });
console.log(JSON.stringify(out));
