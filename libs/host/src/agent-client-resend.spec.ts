// The resend after a handshake (PROTOCOL.md §5) is for what the agent may have swallowed before
// it: a request written after the SyncResponse went to the synced agent and must not be written
// again when the AgentReady that follows arrives (agent.update once staged its first chunk twice:
// EEXIST). A scripted peer on a real socket, so the timing between the two is exact.
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
            send(
              agentMessage(m.messageId, {
                case: 'syncResponse',
                value: create(SyncResponseSchema, {
                  nonce: m.payload.value.nonce,
                  protocolVersion: 1,
                  agentVersion: 'peer',
                }),
              }),
            );
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
});
