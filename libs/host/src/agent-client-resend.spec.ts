// The resend after a handshake (PROTOCOL.md §5) is for what the agent may have swallowed before
// it: a request written after the SyncResponse went to the synced agent and must not be written
// again when the AgentReady that follows arrives (agent.update once staged its first chunk twice:
// EEXIST). A scripted peer on a real socket, so the timing between the two is exact.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  AgentInfoSchema,
  AgentReadyEventSchema,
  AgentStreamReader,
  PingRequestSchema,
  PongResponseSchema,
  SyncResponseSchema,
  agentMessage,
  encodeAgentMessage,
  type AgentMessage,
} from '@lq/proto';
import { AgentClient } from './agent-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The peer's answer to the client's sync: protocol 1, agent version 'peer' unless told. */
function syncAnswer(messageId: string, nonce: bigint, agentVersion = 'peer'): AgentMessage {
  return agentMessage(messageId, {
    case: 'syncResponse',
    value: create(SyncResponseSchema, { nonce, protocolVersion: 1, agentVersion }),
  });
}

describe('AgentClient resend after a handshake', () => {
  let dir: string;
  let server: Server | undefined;
  let client: AgentClient | undefined;

  afterEach(async () => {
    client?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('should not write again a request sent between the SyncResponse and the AgentReady', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-resend-'));
    const path = join(dir, 'agent.sock');
    const seen = new Map<string, number>();
    let peer: Socket | undefined;
    const send = (m: AgentMessage) => {
      for (const part of encodeAgentMessage(m)) {
        peer!.write(part);
      }
    };
    server = createServer((socket) => {
      peer = socket;
      const reader = new AgentStreamReader({
        partialFrameTimeoutMs: 1000,
        onMessage: (m) => {
          seen.set(m.messageId, (seen.get(m.messageId) ?? 0) + 1);
          if (m.payload.case === 'sync') {
            send(syncAnswer(m.messageId, m.payload.value.nonce));
            // The AgentReady comes a little later, as from a busy agent.
            setTimeout(
              () =>
                send(
                  agentMessage('ready', {
                    case: 'agentReady',
                    value: create(AgentReadyEventSchema, {
                      info: create(AgentInfoSchema, { agentVersion: 'peer' }),
                    }),
                  }),
                ),
              200,
            );
          }
          // Pings are answered only after the AgentReady has come and gone.
          if (m.payload.case === 'ping') {
            setTimeout(
              () =>
                send(
                  agentMessage(m.messageId, {
                    case: 'pong',
                    value: create(PongResponseSchema, {}),
                  }),
                ),
              600,
            );
          }
        },
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server!.listen(path, r));
    client = new AgentClient({ path, keepaliveMs: 0 });
    client.start();
    await client.waitReady(5000);
    const reply = await client.request(
      { case: 'ping', value: create(PingRequestSchema) },
      { messageId: 'once', timeoutMs: 5000 },
    );
    expect(reply.payload.case).toBe('pong');
    await sleep(1200); // past the resend timer too
    expect(seen.get('once')).toBe(1);
  });

  // Issue 17: an agent that answers the sync before it has loaded (the guest agent's early
  // phase) sends the AgentReady after it later than the resend wait. That AgentReady, from a
  // restarted process, failed as 'restarted' the requests written to it after the sync too,
  // which it then ran.
  it('should keep a request sent after the sync when a new process says AgentReady late', async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-resend-'));
    const path = join(dir, 'agent.sock');
    let peer: Socket | undefined;
    let syncs = 0;
    let readySent = false;
    const held: string[] = [];
    const send = (m: AgentMessage) => {
      for (const part of encodeAgentMessage(m)) {
        peer!.write(part);
      }
    };
    const pong = (id: string) =>
      send(agentMessage(id, { case: 'pong', value: create(PongResponseSchema, {}) }));
    const ready = (seconds: number) => {
      send(
        agentMessage(`evt-${seconds}`, {
          case: 'agentReady',
          value: create(AgentReadyEventSchema, {
            info: create(AgentInfoSchema, {
              agentVersion: 'peer',
              startedAt: { seconds: BigInt(seconds), nanos: 0 },
            }),
          }),
        }),
      );
      readySent = true;
      for (const id of held.splice(0)) {
        pong(id);
      }
    };
    server = createServer((socket) => {
      peer = socket;
      const reader = new AgentStreamReader({
        partialFrameTimeoutMs: 1000,
        onMessage: (m) => {
          if (m.payload.case === 'sync') {
            syncs++;
            send(syncAnswer(m.messageId, m.payload.value.nonce));
            if (syncs === 1) {
              ready(1000); // the first process
            } else {
              // The second process, restarted behind the open channel: its agent loads slowly.
              readySent = false;
              setTimeout(() => ready(2000), 1500);
            }
            return;
          }
          if (m.payload.case !== 'ping' || m.messageId === 'lost') {
            return; // the first process died with it
          }
          if (readySent) {
            pong(m.messageId);
          } else {
            held.push(m.messageId);
          }
        },
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server!.listen(path, r));
    client = new AgentClient({ path, keepaliveMs: 0 });
    const c = client;
    c.start();
    await c.waitReady(5000);
    // A request the old process never answers: its timeout makes the host resync.
    let infoAtResync: string | undefined;
    const resynced = new Promise<void>((resolve) =>
      c.on('state', (state: string) => {
        if (state === 'ready' && syncs === 2) {
          infoAtResync = c.info?.agentVersion;
          resolve();
        }
      }),
    );
    await expect(
      c.request(
        { case: 'ping', value: create(PingRequestSchema) },
        { messageId: 'lost', timeoutMs: 200 },
      ),
    ).rejects.toThrow();
    await resynced;
    // Same version: what the last AgentReady said stands until the next one.
    expect(infoAtResync).toBe('peer');
    const reply = await c.request(
      { case: 'ping', value: create(PingRequestSchema) },
      { messageId: 'after', timeoutMs: 5000 },
    );
    expect(reply.payload.case).toBe('pong');
  });

  // The node daemon's status of a VM (VmAgentStatus) paired the version in a new agent's sync
  // with the previous agent's AgentInfo until the new one's AgentReady (an update A -> B showed
  // B ready with A's facts).
  it("should not pair a new agent version with the previous agent's info", async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-resend-'));
    const path = join(dir, 'agent.sock');
    let peer: Socket | undefined;
    let syncs = 0;
    const send = (m: AgentMessage) => {
      for (const part of encodeAgentMessage(m)) {
        peer!.write(part);
      }
    };
    const ready = (agentVersion: string, seconds: number) =>
      send(
        agentMessage(`evt-${seconds}`, {
          case: 'agentReady',
          value: create(AgentReadyEventSchema, {
            info: create(AgentInfoSchema, {
              agentVersion,
              startedAt: { seconds: BigInt(seconds), nanos: 0 },
            }),
          }),
        }),
      );
    server = createServer((socket) => {
      peer = socket;
      const reader = new AgentStreamReader({
        partialFrameTimeoutMs: 1000,
        onMessage: (m) => {
          if (m.payload.case !== 'sync') {
            return; // the first process dies with the ping: the host resyncs
          }
          syncs++;
          send(syncAnswer(m.messageId, m.payload.value.nonce, syncs === 1 ? 'A' : 'B'));
          if (syncs === 1) {
            ready('A', 1000);
          } else {
            setTimeout(() => ready('B', 2000), 300);
          }
        },
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server!.listen(path, r));
    client = new AgentClient({ path, keepaliveMs: 0 });
    const c = client;
    const readyInfo: (string | undefined)[] = [];
    c.on('ready', (info?: { agentVersion: string }) => readyInfo.push(info?.agentVersion));
    const firstReady = once(c, 'ready');
    c.start();
    await c.waitReady(5000);
    await firstReady;
    expect(c.info?.agentVersion).toBe('A');
    const secondReady = once(c, 'ready');
    let atResync: [string, string | undefined] | undefined;
    c.on('state', (state: string) => {
      if (state === 'ready' && syncs === 2) {
        atResync = [c.agentVersion, c.info?.agentVersion];
      }
    });
    await expect(
      c.request(
        { case: 'ping', value: create(PingRequestSchema) },
        { messageId: 'lost', timeoutMs: 200 },
      ),
    ).rejects.toThrow();
    await secondReady;
    expect(atResync).toEqual(['B', undefined]);
    expect(readyInfo).toEqual(['A', 'B']);
    expect(c.info?.agentVersion).toBe('B');
  });
});
