// AgentClient on a channel congested by its own requests (a rollout's uploads, big writes
// pipelined), against a real agent process: a keepalive ping or a short request that waits
// behind megabytes of requests times out on the host side while the agent is busy answering
// the ones ahead of it. The stream is in step; a resync would re-send every request still in
// flight (megabytes more behind the same queue) and only slow the agent down further.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  AgentMessageDecoder,
  ExecuteRequestSchema,
  FileWriteRequestSchema,
  PingRequestSchema,
} from '@lq/proto';
import { AgentClient, AgentTimeoutError } from '@lq/host';
import { startSimVms, type SimVms } from '../../../../test/support/sim-vms.js';

const MIB = 1024 * 1024;

/** Relays one host connection to the agent's socket, counting the host's bytes and messages. */
class CountingRelay {
  hostBytes = 0;
  /** Pings and sync requests the host sent. */
  pings = 0;
  syncs = 0;
  private readonly decoder = new AgentMessageDecoder({ maxFrameBytes: 4 * MIB });
  private readonly server: Server;
  private readonly sockets: Socket[] = [];

  constructor(
    readonly path: string,
    target: string,
  ) {
    this.server = createServer((host) => {
      const agent = createConnection(target);
      this.sockets.push(host, agent);
      host.on('data', (chunk: Buffer) => {
        this.hostBytes += chunk.length;
        for (const message of this.decoder.push(chunk)) {
          this.pings += message.payload.case === 'ping' ? 1 : 0;
          this.syncs += message.payload.case === 'sync' ? 1 : 0;
        }
        if (!agent.write(chunk)) {
          host.pause();
          agent.once('drain', () => host.resume());
        }
      });
      agent.pipe(host);
      host.on('error', () => undefined);
      agent.on('error', () => undefined);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  close(): Promise<void> {
    this.sockets.forEach((s) => s.destroy());
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('AgentClient on a channel congested by its own requests', () => {
  let dir: string;
  let sim: SimVms;
  let relay: CountingRelay;
  let client: AgentClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-client-congestion-'));
    sim = await startSimVms({ dir, count: 1, config: { telemetry_interval_ms: 0 } });
  });

  afterEach(async () => {
    client?.close();
    await relay?.close();
  });

  afterAll(async () => {
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (keepaliveMs: number) => {
    relay = new CountingRelay(join(dir, 'relay.sock'), sim.vms[0]!.socketPath);
    await relay.listen();
    client = new AgentClient({ path: relay.path, keepaliveMs, requestTimeoutMs: 120_000 });
    client.start();
    await client.waitReady(5000);
  };

  /** `count` writes of 1 MiB each, all in flight at once, into one file at offset 0. */
  const pipelinedWrites = (count: number) => {
    const target = join(sim.vms[0]!.workDir, 'congested.bin');
    const data = Buffer.alloc(MIB, 0x5a);
    return {
      target,
      done: Promise.all(
        Array.from({ length: count }, () =>
          client.call(
            {
              case: 'fileWrite',
              value: create(FileWriteRequestSchema, {
                path: target,
                offset: 0n,
                data,
                create: true,
              }),
            },
            'fileWriteResponse',
          ),
        ),
      ),
    };
  };

  it('should not send writes again when a keepalive ping times out behind them', async () => {
    // A keepalive every 250 ms: its ping waits behind up to 192 MiB of writes (seconds of work
    // here) and times out. (At 100 ms a loaded machine sometimes let the agent answer nothing
    // for a whole ping's wait, and the client then rightly resynced: PROTOCOL.md §5.)
    await connect(250);
    const before = relay.hostBytes;
    const { target, done } = pipelinedWrites(192);
    const replies = await done;
    expect(replies.every((r) => r.bytesWritten === BigInt(MIB))).toBe(true);
    // A resync re-sends what is in flight a second after the agent answers it.
    await new Promise((r) => setTimeout(r, 1500));
    const sent = relay.hostBytes - before;
    // Each write once (its 1 MiB and its frame), pings and acks beside them; a single write
    // sent twice is a MiB more.
    expect(sent).toBeGreaterThanOrEqual(192 * MIB);
    expect(sent).toBeLessThan(192 * MIB + MIB / 2);
    expect(readFileSync(target).length).toBe(MIB);
    // A keepalive ping went out behind the writes, and no sync but the connection's first.
    expect(relay.pings).toBeGreaterThan(0);
    expect(relay.syncs).toBe(1);
  });

  it('should not send writes again when a short request of its own times out behind them', async () => {
    await connect(0);
    const before = relay.hostBytes;
    const { done } = pipelinedWrites(128);
    await new Promise((r) => setTimeout(r, 20));
    // Queued behind the writes: its deadline passes before the agent reads it.
    await expect(
      client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong', { timeoutMs: 100 }),
    ).rejects.toThrow(AgentTimeoutError);
    await done;
    await new Promise((r) => setTimeout(r, 1500));
    const sent = relay.hostBytes - before;
    expect(sent).toBeLessThan(128 * MIB + MIB / 2);
    expect(relay.syncs).toBe(1);
    // The channel is in step: the next request is answered.
    await client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong');
  });

  it('should take answers that came in time as answers when its own event loop was held up', async () => {
    // Straight to the agent (a relay in this process would be held up too).
    client = new AgentClient({ path: sim.vms[0]!.socketPath, keepaliveMs: 0 });
    client.start();
    await client.waitReady(5000);
    const states: string[] = [];
    client.on('state', (state: string) => states.push(state));
    const ping = (timeoutMs?: number) =>
      client.call(
        { case: 'ping', value: create(PingRequestSchema) },
        'pong',
        timeoutMs ? { timeoutMs } : undefined,
      );
    // Both are written now and answered by the agent within milliseconds, while this thread is
    // held past the first one's deadline (a long GC, a busy machine): when the loop runs again,
    // the timer comes before the socket is read, with both answers waiting in it.
    const short = ping(50);
    const other = ping();
    const until = performance.now() + 400;
    while (performance.now() < until) {
      // held up
    }
    // Its answer came in time: it is answered, not timed out, and nothing is resynced.
    await expect(short).resolves.toBeDefined();
    await other;
    await new Promise((r) => setTimeout(r, 200));
    expect(states).toEqual([]);
    expect(client.state).toBe('ready');
    // A request the agent has not answered by its deadline still times out (and a fresh one
    // is answered after it).
    await expect(
      client.call(
        { case: 'execute', value: create(ExecuteRequestSchema, { argv: ['/bin/sleep', '1'] }) },
        'executeResponse',
        { timeoutMs: 100 },
      ),
    ).rejects.toThrow(AgentTimeoutError);
    await ping();
  });
});
