// Fault tests (issue 2, acceptance 7): garbage, half frames, absurd lengths and unknown message
// types on the real agent's socket. After each, a fresh sync and ping must succeed and the agent
// process must still be the same one.
import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AgentMessageDecoder,
  AgentMessageSchema,
  ErrorCode,
  FRAME_MAGIC,
  PingRequestSchema,
  SyncRequestSchema,
  agentMessage,
  crc32,
  encodeAgentMessageFrame,
  encodeFrame,
  type AgentMessage,
} from '@lq/proto';
import { startAgent, type RunningAgent } from '../support/agent-process.js';

/** A bare host end: raw bytes out, decoded messages in. */
class RawHost {
  readonly received: AgentMessage[] = [];
  private readonly decoder = new AgentMessageDecoder();
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received.push(...this.decoder.push(chunk));
      this.waiters.forEach((w) => w());
    });
  }

  static connect(path: string): Promise<RawHost> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => resolve(new RawHost(socket)));
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  send(message: AgentMessage): void {
    this.write(encodeAgentMessageFrame(message));
  }

  async waitFor(pred: (m: AgentMessage) => boolean, timeoutMs = 5000): Promise<AgentMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.received.find(pred);
      if (hit) {
        return hit;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no matching message within ${timeoutMs} ms; got ${this.received.map((m) => m.payload.case).join(',')}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
      this.waiters = [];
    }
  }

  /** Sync with a nonce (retrying as a host does), then ping. */
  async syncAndPing(): Promise<void> {
    let synced = false;
    for (let attempt = 0; attempt < 5 && !synced; attempt++) {
      const nonce = randomBytes(8).readBigUInt64BE();
      this.send(
        agentMessage(`sync-${attempt}`, {
          case: 'sync',
          value: create(SyncRequestSchema, { nonce, protocolVersion: 1 }),
        }),
      );
      synced = await this.waitFor(
        (m) => m.payload.case === 'syncResponse' && m.payload.value.nonce === nonce,
        1500,
      ).then(
        () => true,
        () => false,
      );
    }
    expect(synced).toBe(true);
    const id = `ping-${randomBytes(4).toString('hex')}`;
    this.send(agentMessage(id, { case: 'ping', value: create(PingRequestSchema) }));
    const pong = await this.waitFor((m) => m.messageId === id);
    expect(pong.payload.case).toBe('pong');
  }

  close(): void {
    this.socket.destroy();
  }
}

function headerClaiming(length: number): Buffer {
  const h = Buffer.alloc(20);
  FRAME_MAGIC.copy(h, 0);
  h[4] = 1;
  h.writeUInt32BE(length, 8);
  h.writeUInt32BE(crc32(h.subarray(0, 16)), 16);
  return h;
}

describe('guest agent under channel faults', () => {
  let agent: RunningAgent;
  let pid: number | undefined;

  beforeAll(async () => {
    agent = await startAgent({ partial_frame_timeout_ms: 300 });
    pid = agent.proc.pid;
  });
  afterAll(async () => {
    await agent?.stop();
  });

  afterEach(() => {
    expect(agent.proc.exitCode).toBeNull();
    expect(agent.proc.pid).toBe(pid);
  });

  it('should skip 1 MiB of random bytes and answer the next sync and ping', async () => {
    const host = await RawHost.connect(agent.socketPath);
    host.write(randomBytes(1024 * 1024));
    await host.syncAndPing();
    host.close();
  });

  it('should survive a half frame followed by a reconnect', async () => {
    const first = await RawHost.connect(agent.socketPath);
    const frame = encodeAgentMessageFrame(
      agentMessage('half', { case: 'ping', value: create(PingRequestSchema) }),
    );
    first.write(frame.subarray(0, frame.length - 3));
    first.close();
    const second = await RawHost.connect(agent.socketPath);
    await second.syncAndPing();
    second.close();
  });

  it('should recover when a half frame is followed by a sync on the same connection', async () => {
    const host = await RawHost.connect(agent.socketPath);
    const big = encodeFrame(randomBytes(100_000));
    host.write(big.subarray(0, 50_000));
    await host.syncAndPing();
    host.close();
  });

  it('should refuse a 4 GiB length field without allocating it and keep serving', async () => {
    const host = await RawHost.connect(agent.socketPath);
    const before = agent.memory().rss;
    host.write(headerClaiming(0xffffffff));
    host.write(randomBytes(1000));
    await host.syncAndPing();
    expect(agent.memory().rss - before).toBeLessThan(64 * 1024 * 1024);
    host.close();
  });

  it('should answer an unknown message type with UNKNOWN_OPERATION and its id', async () => {
    const host = await RawHost.connect(agent.socketPath);
    await host.syncAndPing();
    // message_id = "mystery", then field 49 (unassigned in v1) as an empty length-delimited value.
    const known = toBinary(
      AgentMessageSchema,
      create(AgentMessageSchema, { messageId: 'mystery' }),
    );
    const payload = Buffer.concat([known, Buffer.from([0x8a, 0x03, 0x00])]);
    host.write(encodeFrame(payload));
    const reply = await host.waitFor((m) => m.messageId === 'mystery');
    expect(reply.payload.case).toBe('error');
    if (reply.payload.case === 'error') {
      expect(reply.payload.value.code).toBe(ErrorCode.UNKNOWN_OPERATION);
    }
    // A frame whose payload is not protobuf at all is dropped, not fatal.
    host.write(encodeFrame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])));
    await host.syncAndPing();
    host.close();
  });

  it('should answer a request without an id with INVALID_REQUEST', async () => {
    const host = await RawHost.connect(agent.socketPath);
    await host.syncAndPing();
    host.send(agentMessage('', { case: 'ping', value: create(PingRequestSchema) }));
    const reply = await host.waitFor((m) => m.payload.case === 'error');
    expect(reply.messageId).toBe('');
    host.close();
  });
});
