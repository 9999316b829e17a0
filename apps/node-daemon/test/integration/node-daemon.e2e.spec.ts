// Acceptance tests of the node daemon (issue 3): a real nats-server started on a free port, real
// node daemon processes, real agent processes on real sockets (simulated VMs).
import {
  signedRequestGuest,
  signedCallGuest,
  testFilePort,
} from '../../../../test/support/signing.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, fromBinary } from '@bufbuild/protobuf';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  AgentEventSchema,
  AgentState,
  ErrorCode,
  ExecuteRequestSchema,
  FRAME_MAGIC,
  crc32,
  GuestErrorCode,
  NodeHeartbeatSchema,
  VmTelemetrySchema,
  subjects,
  type AgentEvent,
  type NodeHeartbeat,
  type VmTelemetry,
} from '@lq/proto';
import { GuestRequestError, readGuestFile, writeGuestFile } from '@lq/host';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { startSimVms, type SimVms } from '../../../../test/support/sim-vms.js';
import { startChannelProxy, type ChannelProxy } from '../../../../test/support/channel-proxy.js';
import {
  startNodeDaemon,
  type RunningNodeDaemon,
} from '../../../../test/support/node-daemon-process.js';

const MiB = 1024 * 1024;

/** Collects messages of a subject, decoded, for assertions that wait. */
class Collector<T> {
  readonly items: T[] = [];
  private readonly sub: Subscription;
  constructor(nc: NatsConnection, subject: string, decode: (data: Uint8Array) => T) {
    this.sub = nc.subscribe(subject, {
      callback: (_err, msg) => {
        this.items.push(decode(msg.data));
      },
    });
  }
  async waitFor(pred: (item: T) => boolean, timeoutMs = 5000, from = 0): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.items.slice(from).find(pred);
      if (hit) {
        return hit;
      }
      if (Date.now() > deadline) {
        throw new Error(`nothing matching within ${timeoutMs} ms (${this.items.length} received)`);
      }
      await sleep(25);
    }
  }
  close(): void {
    this.sub.unsubscribe();
  }
}

async function ping(nc: NatsConnection, nodeId: string, vmId: string, timeoutMs = 2000) {
  return signedRequestGuest(nc, nodeId, 'ping', {
    vmId,
    timeoutMs,
    operation: { case: 'ping', value: {} },
  });
}

function errorCodeOf(response: Awaited<ReturnType<typeof ping>>): string | undefined {
  return response.result.case === 'error' ? GuestErrorCode[response.result.value.code] : undefined;
}

function vmState(hb: NodeHeartbeat, vmId: string): AgentState | undefined {
  return hb.vms.find((v) => v.vmId === vmId)?.state;
}

describe('node daemon relaying NATS to guest agents', () => {
  let nats: RunningNats;
  let nc: NatsConnection;
  let work: string;
  let dirA: string;
  let dirB: string;
  let simA: SimVms;
  let simB: SimVms;
  let daemonA: RunningNodeDaemon;
  let daemonB: RunningNodeDaemon;
  let heartbeats: Collector<NodeHeartbeat>;
  let events: Collector<AgentEvent>;
  let telemetry: Collector<VmTelemetry>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-node-daemon-'));
    dirA = join(work, 'channels-a');
    dirB = join(work, 'channels-b');
    mkdirSync(dirA);
    mkdirSync(dirB);
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    heartbeats = new Collector(nc, subjects.allHeartbeats, (d) =>
      fromBinary(NodeHeartbeatSchema, d),
    );
    events = new Collector(nc, subjects.allEvents, (d) => fromBinary(AgentEventSchema, d));
    telemetry = new Collector(nc, subjects.allTelemetry, (d) => fromBinary(VmTelemetrySchema, d));
    [simA, simB] = await Promise.all([
      startSimVms({ dir: dirA, count: 3, config: { telemetry_interval_ms: 500 } }),
      startSimVms({ dir: dirB, count: 10, prefix: 'b-vm-' }),
    ]);
    [daemonA, daemonB] = await Promise.all([
      startNodeDaemon({
        nodeId: 'node-a',
        natsUrl: nats.url,
        channelDirs: [dirA],
        env: { NATS_RECONNECT_WAIT_MS: '200' },
      }),
      startNodeDaemon({ nodeId: 'node-b', natsUrl: nats.url, channelDirs: [dirB] }),
    ]);
    await heartbeats.waitFor(
      (hb) =>
        hb.nodeId === 'node-a' &&
        hb.vms.length === 3 &&
        hb.vms.every((v) => v.state === AgentState.READY),
      10_000,
    );
    await heartbeats.waitFor(
      (hb) =>
        hb.nodeId === 'node-b' &&
        hb.vms.length === 10 &&
        hb.vms.every((v) => v.state === AgentState.READY),
      10_000,
    );
  });

  afterAll(async () => {
    heartbeats?.close();
    events?.close();
    telemetry?.close();
    await nc?.close();
    await Promise.all([daemonA?.stop(), daemonB?.stop()]);
    await Promise.all([simA?.stop(), simB?.stop()]);
    await nats?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should answer ping for each of 3 VMs with the agent pong, and VM_NOT_FOUND for an unknown VM', async () => {
    for (const vm of simA.vms) {
      const r = await ping(nc, 'node-a', vm.id);
      expect(r.result.case).toBe('pong');
      expect(r.vmId).toBe(vm.id);
      expect(r.nodeId).toBe('node-a');
    }
    const unknown = await ping(nc, 'node-a', 'no-such-vm');
    expect(errorCodeOf(unknown)).toBe('VM_NOT_FOUND');
  });

  it('should publish heartbeats with agent facts, ready events and telemetry', async () => {
    const hb = await heartbeats.waitFor(
      (h) =>
        h.nodeId === 'node-a' &&
        h.vms.some((v) => v.vmId === 'vm-1' && v.state === AgentState.READY && v.info),
    );
    const vm = hb.vms.find((v) => v.vmId === 'vm-1')!;
    expect(vm.agentVersion).toMatch(/\d+\.\d+/);
    expect(vm.capabilities).toContain('execute');
    expect(vm.info?.hostname.length).toBeGreaterThan(0);
    expect(hb.fileChunkMaxBytes).toBeGreaterThan(0);
    await events.waitFor((e) => e.nodeId === 'node-a' && e.vmId === 'vm-1' && e.kind === 'ready');
    const t = await telemetry.waitFor((m) => m.nodeId === 'node-a' && m.vmId === 'vm-2');
    expect(t.report?.cpuCount).toBeGreaterThan(0);
  });

  it('should run execute and move a 16 MiB file both ways through NATS in chunks', async () => {
    const res = await signedCallGuest(
      nc,
      'node-a',
      'execute',
      {
        vmId: 'vm-1',
        timeoutMs: 10_000,
        operation: {
          case: 'execute',
          value: create(ExecuteRequestSchema, { argv: ['uname', '-s'] }),
        },
      },
      'execute',
    );
    expect(Buffer.from(res.stdout).toString()).toBe('Linux\n');

    const hb = await heartbeats.waitFor((h) => h.nodeId === 'node-a');
    const port = testFilePort(nc, 'node-a', 'vm-2', hb.fileChunkMaxBytes, 'test');
    const data = randomBytes(16 * MiB);
    const path = join(simA.vms[1]!.workDir, 'sixteen.bin');
    async function* source() {
      for (let off = 0; off < data.length; off += 700_000) {
        yield data.subarray(off, off + 700_000);
      }
    }
    const written = await writeGuestFile(port, path, source());
    expect(written.bytes).toBe(data.length);
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(path))).toBe(sha(data));
    const hash = createHash('sha256');
    const read = await readGuestFile(port, path, (chunk) => {
      hash.update(chunk);
    });
    expect(read.bytes).toBe(data.length);
    expect(hash.digest('hex')).toBe(sha(data));
  });

  it('should report an agent error with its code, and refuse a chunk above the limit before relaying', async () => {
    const err = await signedCallGuest(
      nc,
      'node-a',
      'file.read',
      {
        vmId: 'vm-1',
        operation: { case: 'fileRead', value: { path: 'relative/path', length: 10 } },
      },
      'fileRead',
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuestRequestError);
    expect((err as GuestRequestError).codeName).toBe('AGENT_ERROR');
    expect((err as GuestRequestError).agentCode).toBe(ErrorCode.PATH_NOT_ALLOWED);

    const big = await signedRequestGuest(nc, 'node-a', 'file.read', {
      vmId: 'vm-1',
      operation: { case: 'fileRead', value: { path: '/tmp/x', length: 64 * MiB } },
    });
    expect(errorCodeOf(big)).toBe('INVALID_REQUEST');
    const mismatch = await signedRequestGuest(nc, 'node-a', 'execute', {
      vmId: 'vm-1',
      operation: { case: 'ping', value: {} },
    });
    expect(errorCodeOf(mismatch)).toBe('INVALID_REQUEST');
  });

  it('should show a killed agent disconnected, answer AGENT_NOT_CONNECTED, and serve again after a restart', async () => {
    const from = heartbeats.items.length;
    const killedAt = Date.now();
    await simA.kill('vm-3', 'SIGKILL');
    // Outcomes, waited for generously; the times are printed (and measured by npm run faults).
    await heartbeats.waitFor(
      (h) => h.nodeId === 'node-a' && vmState(h, 'vm-3') === AgentState.DISCONNECTED,
      20_000,
      from,
    );
    process.stderr.write(
      `[node daemon] killed agent disconnected after ${Date.now() - killedAt} ms\n`,
    );
    await events.waitFor((e) => e.vmId === 'vm-3' && e.kind === 'disconnected');
    expect(errorCodeOf(await ping(nc, 'node-a', 'vm-3'))).toBe('AGENT_NOT_CONNECTED');

    await simA.restart('vm-3');
    const restartedAt = Date.now();
    let ok = false;
    while (!ok && Date.now() - restartedAt < 30_000) {
      ok = (await ping(nc, 'node-a', 'vm-3', 500)).result.case === 'pong';
      if (!ok) {
        await sleep(50);
      }
    }
    expect(ok).toBe(true);
    process.stderr.write(
      `[node daemon] restarted agent served after ${Date.now() - restartedAt} ms\n`,
    );
    expect(daemonA.proc.exitCode).toBeNull();
  });

  it('should re-sync after 1 MiB of garbage on a channel and serve the next request', async () => {
    const real = join(work, 'hidden-agent');
    mkdirSync(real);
    const hidden = await startSimVms({ dir: real, count: 1, prefix: 'garbage-vm-' });
    let proxy: ChannelProxy | undefined;
    try {
      proxy = await startChannelProxy({
        listenPath: join(dirA, 'garbage-vm-1.sock'),
        targetPath: hidden.vms[0]!.socketPath,
      });
      await heartbeats.waitFor(
        (h) => h.nodeId === 'node-a' && vmState(h, 'garbage-vm-1') === AgentState.READY,
        5000,
      );
      proxy.injectToHost(randomBytes(MiB));
      proxy.injectToAgent(randomBytes(MiB));
      // And a half frame: a valid header whose payload never comes swallows what follows until
      // one side gives up on it and resynchronises.
      const header = Buffer.alloc(20);
      FRAME_MAGIC.copy(header, 0);
      header[4] = 1;
      header.writeUInt32BE(65536, 8);
      header.writeUInt32BE(crc32(header.subarray(0, 16)), 16);
      proxy.injectToAgent(header);
      proxy.injectToHost(header);
      const r = await signedCallGuest(
        nc,
        'node-a',
        'execute',
        {
          vmId: 'garbage-vm-1',
          timeoutMs: 10_000,
          operation: {
            case: 'execute',
            value: create(ExecuteRequestSchema, { command: 'echo after-garbage' }),
          },
        },
        'execute',
      );
      expect(Buffer.from(r.stdout).toString()).toBe('after-garbage\n');
    } finally {
      await proxy?.close();
      await hidden.stop();
    }
  });

  it('should answer only its own subjects when two daemons share one NATS', async () => {
    expect((await ping(nc, 'node-b', 'b-vm-1')).result.case).toBe('pong');
    expect(errorCodeOf(await ping(nc, 'node-a', 'b-vm-1'))).toBe('VM_NOT_FOUND');
    expect(errorCodeOf(await ping(nc, 'node-b', 'vm-1'))).toBe('VM_NOT_FOUND');
    const noNode = await ping(nc, 'node-zzz', 'vm-1').catch((e: unknown) => e);
    expect(String(noNode)).toMatch(/no responders/i);
  });

  it('should answer 500 concurrent executes over 10 VMs, none lost or mixed up', async () => {
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => {
        const vmId = `b-vm-${(i % 10) + 1}`;
        return signedCallGuest(
          nc,
          'node-b',
          'execute',
          {
            vmId,
            requestId: `conc-${i}`,
            timeoutMs: 60_000,
            operation: {
              case: 'execute',
              value: create(ExecuteRequestSchema, { argv: ['echo', `${vmId}:${i}`] }),
            },
          },
          'execute',
        ).then((r) => ({ i, vmId, out: Buffer.from(r.stdout).toString() }));
      }),
    );
    for (const { i, vmId, out } of results) {
      expect(out).toBe(`${vmId}:${i}\n`);
    }
  });

  it('should reconnect to a restarted nats-server and serve again without exiting', async () => {
    await nats.restart();
    const started = Date.now();
    let ok = false;
    while (!ok && Date.now() - started < 10_000) {
      ok = await ping(nc, 'node-a', 'vm-1', 500).then(
        (r) => r.result.case === 'pong',
        () => false,
      );
      if (!ok) {
        await sleep(100);
      }
    }
    expect(ok).toBe(true);
    expect(daemonA.proc.exitCode).toBeNull();
    expect(daemonB.proc.exitCode).toBeNull();
  });

  it('should drain and exit 0 on SIGTERM', async () => {
    const code = await daemonB.stop();
    expect(code).toBe(0);
    expect(daemonB.output()).toMatch(/SIGTERM: draining/);
  });
});

describe('node daemon configuration', () => {
  it('should refuse to start naming the variable when the configuration is invalid', async () => {
    const err = await startNodeDaemon({
      nodeId: 'bad.id',
      natsUrl: 'nats://127.0.0.1:1',
      channelDirs: ['/tmp'],
    }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/exited 2/);
    expect(String(err)).toMatch(/LQ_NODE_ID/);
  });
});
