// One agent's hot paths, run inside a copy of the peer-bench harness by bench/peer/hot-paths.mjs:
// per-operation median round trip and the agent's CPU per operation (utime+stime from /proc).
//   node hot-loop.mjs --agent ADAPTER [--n 2000] [--phases ping,osinfo,fsinfo,read4k,read1m,write1m,exec]
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
