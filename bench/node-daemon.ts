// Node daemon benchmark (issue 3, acceptance 8): the latency the daemon adds to a guest request
// (NATS request → daemon → agent → reply, minus a direct agent round trip), and the request
// rate at several concurrencies. Run: npm run bench:node-daemon [-- --quick].
import { signedRequestGuest } from '../test/support/signing.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { connect } from '@nats-io/transport-node';
import { PingRequestSchema } from '@lq/proto';
import { AgentClient } from '@lq/host';
import { startNatsServer } from '../test/support/nats-server.js';
import { startSimVms } from '../test/support/sim-vms.js';
import { startNodeDaemon } from '../test/support/node-daemon-process.js';
import { stats } from './stats.js';

const quick = process.argv.includes('--quick');

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'lq-bench-nd-'));
  const nats = await startNatsServer();
  const sim = await startSimVms({ dir, count: 1, config: { telemetry_interval_ms: 0 } });
  const daemon = await startNodeDaemon({
    nodeId: 'bench',
    natsUrl: nats.url,
    channelDirs: [dir],
  });
  const nc = await connect({ servers: nats.url });
  const vm = sim.vms[0]!;
  try {
    // Wait until the daemon serves the VM.
    for (let i = 0; i < 200; i++) {
      const r = await signedRequestGuest(nc, 'bench', 'ping', {
        vmId: vm.id,
        timeoutMs: 1000,
        operation: { case: 'ping', value: {} },
      }).catch(() => undefined);
      if (r?.result.case === 'pong') {
        break;
      }
      await new Promise((r2) => setTimeout(r2, 50));
    }
    const n = quick ? 2000 : 10_000;
    const viaDaemon: number[] = [];
    const direct: number[] = [];
    const client = new AgentClient({ path: `${vm.socketPath}` });
    // The daemon holds the agent's one host connection; a direct client would replace it. So the
    // direct round trip is measured on a second agent, the same bundle on its own socket.
    const other = await startSimVms({
      dir: join(dir, 'direct'),
      count: 1,
      config: { telemetry_interval_ms: 0 },
    });
    const directClient = new AgentClient({ path: other.vms[0]!.socketPath });
    directClient.start();
    await directClient.waitReady(5000);
    client.close();
    for (let rep = 0; rep < 2; rep++) {
      for (let i = 0; i < n; i++) {
        let t = performance.now();
        await directClient.request({ case: 'ping', value: create(PingRequestSchema) });
        if (rep === 1) {
          direct.push((performance.now() - t) * 1000);
        }
        t = performance.now();
        await signedRequestGuest(nc, 'bench', 'ping', {
          vmId: vm.id,
          timeoutMs: 2000,
          operation: { case: 'ping', value: {} },
        });
        if (rep === 1) {
          viaDaemon.push((performance.now() - t) * 1000);
        }
      }
    }
    const d = stats(direct);
    const v = stats(viaDaemon);
    const out: string[] = [];
    out.push(`LimiQuantix node daemon benchmark (node ${process.version}, n=${n}, alternating)`);
    out.push(
      `direct agent ping RTT            median ${d.median.toFixed(1)} µs  p99 ${d.p99.toFixed(1)} µs`,
    );
    out.push(
      `NATS → daemon → agent ping RTT   median ${v.median.toFixed(1)} µs  p99 ${v.p99.toFixed(1)} µs`,
    );
    out.push(
      `added by NATS + daemon (median)  ${(v.median - d.median).toFixed(1)} µs   target ≤ 500 µs`,
    );
    for (const concurrency of [1, 32, 128]) {
      const total = quick ? 3000 : 20_000;
      let sent = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (sent < total) {
            sent++;
            await signedRequestGuest(nc, 'bench', 'ping', {
              vmId: vm.id,
              timeoutMs: 5000,
              operation: { case: 'ping', value: {} },
            });
          }
        }),
      );
      out.push(
        `pings through the daemon, ${String(concurrency).padStart(3)} in flight: ${Math.round(total / ((performance.now() - t0) / 1000)).toLocaleString('en')} ops/s`,
      );
    }
    process.stdout.write(`${out.join('\n')}\n`);
    directClient.close();
    await other.stop();
  } finally {
    await nc.close();
    await daemon.stop();
    await sim.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
