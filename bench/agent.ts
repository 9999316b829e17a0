// Guest agent benchmark (issue 2, acceptance 9): starts the shipped agent executable
// (dist/agent/limiquantix-agent-linux-amd64; BENCH_AGENT_NODE_ARGS: the Node bundle instead,
// with those Node.js options) on a Unix socket and
// prints ping RTT, pipelined ping rate, exec round trip, 64 MiB file write/read rates and RSS.
// Run: npm run bench:agent [-- --quick]. Figures only; targets are printed beside them, with
// qemu-ga's from an earlier run of ../shared/peer-bench; `npm run bench:peer` measures both
// agents in one run with the same harness.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import { ExecuteRequestSchema, PingRequestSchema } from '@lq/proto';
import { AgentClient, readGuestFile, writeGuestFile } from '@lq/host';
import { stats } from './stats.js';

const quick = process.argv.includes('--quick');
// --only=ping|exec|file runs one phase (for profiling with BENCH_AGENT_NODE_ARGS=--cpu-prof).
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const phase = (name: string) => only === undefined || only === name;
const MiB = 1024 * 1024;
const bundle = join(process.cwd(), 'dist/guest-agent/limiquantix-agent.cjs');
const executable = join(process.cwd(), 'dist/agent/limiquantix-agent-linux-amd64');

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

const fmt = (n: number, digits = 3) => n.toFixed(digits);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lq-bench-'));
  const shmDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/lq-bench-') : dir;
  const sock = join(dir, 'agent.sock');
  writeFileSync(
    join(dir, 'agent.json'),
    JSON.stringify({
      log_level: 'error',
      telemetry_interval_ms: 0,
      files: { roots: [dir, shmDir] },
    }),
  );
  const t0 = performance.now();
  const nodeArgs = process.env.BENCH_AGENT_NODE_ARGS?.split(' ').filter(Boolean);
  const agentArgs = ['--listen', sock, '--config', join(dir, 'agent.json')];
  const proc = nodeArgs
    ? spawn(process.execPath, [...nodeArgs, bundle, ...agentArgs], { stdio: 'inherit' })
    : spawn(executable, agentArgs, { stdio: 'inherit' });
  while (!existsSync(sock)) {
    await sleep(1);
  }
  const client = new AgentClient({ path: sock, hostId: 'bench', requestTimeoutMs: 120_000 });
  client.start();
  await client.waitReady(5000);
  const ping = () => client.request({ case: 'ping', value: create(PingRequestSchema) });
  await ping();
  const startupMs = performance.now() - t0;
  await sleep(1000);
  const idle = memory(proc.pid!);

  const rows: Array<[string, string, string]> = [];
  rows.push(['startup: spawn → first pong', `${fmt(startupMs, 1)} ms`, '']);

  if (phase('ping')) {
    // Warm up, then sequential pings.
    for (let i = 0; i < 2000; i++) {
      await ping();
    }
    const n = quick ? 2000 : 20_000;
    const rtts: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      await ping();
      rtts.push((performance.now() - s) * 1000);
    }
    const p = stats(rtts);
    rows.push([
      'ping RTT sequential (median / p99 / min)',
      `${fmt(p.median, 1)} / ${fmt(p.p99, 1)} / ${fmt(p.min, 1)} µs (n=${n})`,
      'qemu-ga here: 88 µs median',
    ]);

    for (const inflight of [8, 64]) {
      const total = quick ? 5000 : 50_000;
      let sent = 0;
      const s = performance.now();
      await Promise.all(
        Array.from({ length: inflight }, async () => {
          while (sent < total) {
            sent++;
            await ping();
          }
        }),
      );
      const rate = total / ((performance.now() - s) / 1000);
      rows.push([
        `ping pipelined, ${inflight} in flight`,
        `${Math.round(rate).toLocaleString('en')} ops/s`,
        'qemu-ga here: 53,659 (8) / 56,439 (64)',
      ]);
    }
  }

  if (phase('exec')) {
    const execN = quick ? 100 : 1000;
    const execTimes: number[] = [];
    for (let i = 0; i < execN; i++) {
      const s = performance.now();
      await client.call(
        { case: 'execute', value: create(ExecuteRequestSchema, { argv: ['/bin/true'] }) },
        'executeResponse',
      );
      execTimes.push(performance.now() - s);
    }
    const e = stats(execTimes);
    rows.push([
      'exec /bin/true round trip (median / p99)',
      `${fmt(e.median)} / ${fmt(e.p99)} ms (n=${execN})`,
      'qemu-ga here: 1.20 ms median (exec + status polls)',
    ]);
  }

  if (phase('file')) {
    const size = 64 * MiB;
    const data = randomBytes(size);
    async function* source() {
      for (let off = 0; off < size; off += MiB) {
        yield data.subarray(off, off + MiB);
      }
    }
    // tmpfs shows the channel's own rate; the disk adds the final fsync of an atomic upload.
    const places: Array<[string, string]> = [['disk', dir]];
    if (existsSync('/dev/shm')) {
      places.unshift(['tmpfs', shmDir]);
    }
    for (const [where, base] of places) {
      const path = join(base, 'bench.bin');
      const w: number[] = [];
      const r: number[] = [];
      for (let rep = 0; rep < (quick ? 1 : 3); rep++) {
        const ws = performance.now();
        await writeGuestFile(client, path, source());
        w.push(size / 1e6 / ((performance.now() - ws) / 1000));
        const rs = performance.now();
        let got = 0;
        await readGuestFile(client, path, (c) => {
          got += c.length;
        });
        r.push(size / 1e6 / ((performance.now() - rs) / 1000));
        if (got !== size) {
          throw new Error(`read ${got} bytes, expected ${size}`);
        }
      }
      const list = (xs: number[]) => xs.map((x) => fmt(x, 0)).join(', ');
      rows.push([
        `file write 64 MiB to ${where}, 1 MiB chunks`,
        `${list(w)} MB/s`,
        'target ≥ 300 MB/s; qemu-ga here: ~31 MB/s',
      ]);
      rows.push([
        `file read 64 MiB from ${where}, 1 MiB chunks`,
        `${list(r)} MB/s`,
        'target ≥ 300 MB/s; qemu-ga here: ~103 MB/s',
      ]);
    }
  }

  const end = memory(proc.pid!);
  rows.push([
    'idle RSS, 1 s after start',
    `${fmt(idle.rss / MiB, 1)} MiB`,
    'target ≤ 45 MiB; qemu-ga here: 4.1 MiB',
  ]);
  rows.push([
    'peak RSS (VmHWM) over the run',
    `${fmt(end.hwm / MiB, 1)} MiB`,
    'qemu-ga here: 281 MiB',
  ]);
  await sleep(1000);
  rows.push([
    'RSS 1 s after the last phase',
    `${fmt(memory(proc.pid!).rss / MiB, 1)} MiB`,
    'qemu-ga here: 105.8 MiB',
  ]);

  client.close();
  proc.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  rmSync(shmDir, { recursive: true, force: true });

  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  process.stdout.write(
    `LimiQuantix guest agent benchmark (node ${process.version}, ${quick ? 'quick' : 'full'})\n`,
  );
  for (const [a, b, c] of rows) {
    process.stdout.write(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
