import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { PingRequestSchema, type FrameIssue } from '@lq/proto';
import { AgentClient, AgentTimeoutError, type AgentClientOptions } from '@lq/host';
import { startChannelProxy, type ChannelProxy } from './channel-proxy.js';
import { startSimVms, type SimVms } from './sim-vms.js';

const MiB = 1024 * 1024;

describe('startChannelProxy', () => {
  let dir: string;
  let sim: SimVms;
  let proxy: ChannelProxy;
  let clients: AgentClient[] = [];

  const pingRequest = () => ({ case: 'ping' as const, value: create(PingRequestSchema) });

  async function connect(options: Partial<AgentClientOptions> = {}): Promise<AgentClient> {
    const client = new AgentClient({ path: proxy.listenPath, hostId: 'proxy-test', ...options });
    clients.push(client);
    client.start();
    await client.waitReady(5000);
    return client;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-proxy-'));
    // No telemetry: nothing from the agent can be under way when a test injects bytes.
    sim = await startSimVms({
      dir: join(dir, 'agents'),
      count: 1,
      config: { telemetry_interval_ms: 0 },
    });
    mkdirSync(join(dir, 'channels'));
    proxy = await startChannelProxy({
      listenPath: join(dir, 'channels', 'vm-1.sock'),
      targetPath: sim.vms[0]!.socketPath,
    });
  });

  afterEach(() => {
    clients.forEach((c) => c.close());
    clients = [];
    proxy.resume();
  });

  afterAll(async () => {
    await proxy?.close();
    await sim?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('should relay a ping both ways when the host connects through it', async () => {
    const before = proxy.stats;
    const client = await connect();
    await client.call(pingRequest(), 'pong');
    expect(proxy.openConnections).toBe(1);
    expect(proxy.stats.connections).toBe(before.connections + 1);
    expect(proxy.stats.bytesToAgent).toBeGreaterThan(before.bytesToAgent);
    expect(proxy.stats.bytesToHost).toBeGreaterThan(before.bytesToHost);
  });

  it('should let the next ping succeed when 1 MiB of random garbage is injected toward the host', async () => {
    const client = await connect();
    const issues: FrameIssue[] = [];
    client.on('issue', (issue: FrameIssue) => issues.push(issue));
    proxy.injectToHost(randomBytes(MiB));
    const pong = await client.call(pingRequest(), 'pong', { timeoutMs: 5000 });
    expect(pong).toBeDefined();
    const skipped = issues.filter((i) => i.kind === 'garbage').reduce((n, i) => n + i.bytes, 0);
    // Up to 3 bytes of a possible magic are held back until the next frame; a chance "LQGA"
    // in the garbage costs a byte or so more.
    expect(skipped).toBeGreaterThan(MiB - 64);
    expect(client.state).toBe('ready');
  });

  it('should keep the agent answering when garbage is injected toward the agent', async () => {
    const client = await connect();
    proxy.injectToAgent(randomBytes(64 * 1024));
    await client.call(pingRequest(), 'pong', { timeoutMs: 5000 });
  });

  it('should hold traffic while paused and deliver it when resumed', async () => {
    const client = await connect();
    proxy.pause();
    await expect(client.call(pingRequest(), 'pong', { timeoutMs: 300 })).rejects.toBeInstanceOf(
      AgentTimeoutError,
    );
    proxy.resume();
    // The client resyncs after a timeout; the ping waits for it.
    await client.call(pingRequest(), 'pong', { timeoutMs: 5000 });
  });

  it('should let a reconnecting host back in when its connections are dropped', async () => {
    const client = await connect({ reconnect: true, reconnectInitialMs: 20 });
    const states: string[] = [];
    client.on('state', (s: string) => states.push(s));
    proxy.dropConnections();
    await new Promise<void>((resolve) => {
      const check = (s: string) => {
        if (s === 'ready' && states.includes('disconnected')) {
          client.off('state', check);
          resolve();
        }
      };
      client.on('state', check);
    });
    await client.call(pingRequest(), 'pong', { timeoutMs: 5000 });
  });

  it('should refuse an injection when no host is connected', async () => {
    for (let i = 0; i < 100 && proxy.openConnections > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(() => proxy.injectToHost(new Uint8Array([1]))).toThrow(/no open connection/);
    expect(() => proxy.injectToAgent(new Uint8Array([1]))).toThrow(/no open connection/);
    await expect(proxy.waitForConnection(50)).rejects.toThrow(/no host connected/);
  });

  it('should stop listening and remove its socket when closed', async () => {
    const extra = await startChannelProxy({
      listenPath: join(dir, 'channels', 'extra.sock'),
      targetPath: sim.vms[0]!.socketPath,
    });
    const waiting = extra.waitForConnection(5000);
    const client = new AgentClient({ path: extra.listenPath });
    clients.push(client);
    client.start();
    await waiting;
    await client.waitReady(5000);
    await extra.close();
    expect(existsSync(extra.listenPath)).toBe(false);
    expect(extra.openConnections).toBe(0);
    await expect(client.call(pingRequest(), 'pong')).rejects.toThrow(/not connected|lost/);
  });
});
