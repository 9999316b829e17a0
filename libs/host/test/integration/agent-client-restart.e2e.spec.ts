// AgentClient against an agent that restarts behind a channel that stays open, as a guest agent
// does under QEMU (a reboot, or init restarting a crashed agent, leaves the chardev socket
// connected). Real agent processes; between them and the client, a relay that keeps the client's
// connection and swaps the agent behind it, like the virtio-serial port does.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { ExecuteRequestSchema, PingRequestSchema } from '@lq/proto';
import { AgentClient, AgentNotConnectedError } from '@lq/host';
import { startSimVms, type SimVms } from '../../../../test/support/sim-vms.js';

/** Serves `path`; relays its one client to the agent socket `swap()` last named. */
class PersistentChannel {
  private readonly server: Server;
  private host: Socket | undefined;
  private agent: Socket | undefined;
  private paused = false;

  constructor(
    readonly path: string,
    private target: string,
  ) {
    this.server = createServer((host) => {
      this.host = host;
      host.on('data', (chunk: Buffer) => this.agent?.write(chunk));
      host.on('error', () => undefined);
      this.connectAgent();
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  /** A new agent behind the same host connection: the old one's connection just ends. */
  swap(target: string): void {
    this.target = target;
    this.agent?.destroy();
    this.connectAgent();
  }

  /** Holds the host's bytes back (a request then times out on the host side). */
  pause(paused: boolean): void {
    this.paused = paused;
    if (paused) {
      this.host?.pause();
    } else {
      this.host?.resume();
    }
  }

  close(): Promise<void> {
    this.agent?.destroy();
    this.host?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private connectAgent(): void {
    const agent = createConnection(this.target);
    this.agent = agent;
    agent.on('data', (chunk: Buffer) => {
      if (this.agent === agent) {
        this.host?.write(chunk);
      }
    });
    agent.on('error', () => undefined);
    if (this.paused) {
      this.host?.pause();
    }
  }
}

describe('AgentClient when the agent restarts behind an open channel', () => {
  let dir: string;
  let sim: SimVms;
  let channel: PersistentChannel;
  let client: AgentClient;
  const execute = (command: string, timeoutMs = 60_000) =>
    client.call(
      { case: 'execute', value: create(ExecuteRequestSchema, { command, timeoutMs: 120_000 }) },
      'executeResponse',
      { timeoutMs },
    );
  const ping = (timeoutMs = 5000) =>
    client.call({ case: 'ping', value: create(PingRequestSchema) }, 'pong', { timeoutMs });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-client-restart-'));
    sim = await startSimVms({ dir, count: 2, config: { telemetry_interval_ms: 0 } });
  });

  afterEach(async () => {
    client?.close();
    await channel?.close();
  });

  afterAll(async () => {
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (keepaliveMs: number) => {
    channel = new PersistentChannel(join(dir, 'qemu.sock'), sim.vms[0]!.socketPath);
    await channel.listen();
    client = new AgentClient({ path: channel.path, keepaliveMs });
    client.start();
    await client.waitReady(5000);
  };

  it('should fail a request the old agent had within a keepalive or two, then serve the new one', async () => {
    await connect(300);
    const pending = execute('sleep 30');
    pending.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    await sim.restart('vm-2');
    const swapped = Date.now();
    channel.swap(sim.vms[1]!.socketPath);
    await expect(pending).rejects.toThrow(AgentNotConnectedError);
    await expect(pending).rejects.toThrow(/restarted .* may not have run/);
    expect(Date.now() - swapped).toBeLessThan(3000);
    const pong = await ping();
    expect(pong.uptimeSeconds).toBeLessThan(5);
  });

  it('should keep waiting for a long request of the same agent while keepalive pings go by', async () => {
    await connect(200);
    const r = await execute('sleep 1.5; echo done');
    expect(Buffer.from(r.stdout).toString()).toBe('done\n');
    expect(r.exitCode).toBe(0);
  });

  it('should not send a request again to a restarted agent after a resync', async () => {
    // No keepalive: the restart shows only in the AgentReady that follows the sync, which a
    // request timing out on the host side sets off.
    await connect(0);
    const marker = join(dir, 'runs');
    const pending = execute(`echo run >> ${marker}; sleep 30`);
    pending.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    await sim.restart('vm-2');
    channel.pause(true);
    channel.swap(sim.vms[1]!.socketPath);
    await expect(ping(300)).rejects.toThrow();
    channel.pause(false);
    await expect(pending).rejects.toThrow(/restarted/);
    // Had the client re-sent it after the sync, the new agent would have run it again.
    await new Promise((r) => setTimeout(r, 1500));
    expect(readFileSync(marker, 'utf8')).toBe('run\n');
    await ping();
  });
});
