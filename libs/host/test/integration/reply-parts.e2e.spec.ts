// Reply parts over a real nats-server (PROTOCOL.md §9 Reply parts): requestReply reassembles a
// reply sent in parts on one multi-message inbox, and fails with a clear error when a part is
// lost, the reply is over its bound, or nobody serves the subject.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { connect, RequestError, type NatsConnection } from '@nats-io/transport-node';
import { GuestResponseSchema, type GuestResponse } from '@lq/proto';
import { ReplyPartsError, requestReply, splitReply } from '@lq/host';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';

function reply(bytes: number): GuestResponse {
  return create(GuestResponseSchema, {
    requestId: 'r',
    vmId: 'vm-1',
    nodeId: 'node-1',
    result: { case: 'execute', value: { stdout: randomBytes(bytes), exitCode: 0 } },
  });
}

describe('requestReply over NATS', () => {
  let nats: RunningNats;
  let server: NatsConnection;
  let client: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    [server, client] = await Promise.all([
      connect({ servers: nats.url }),
      connect({ servers: nats.url }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([server?.close(), client?.close()]);
    await nats?.stop();
  });

  /** Serves `subject` with what `answer` makes of the reply, sent as given (parts or not). */
  async function serve(subject: string, answer: (messages: Uint8Array[]) => Uint8Array[]) {
    const sub = server.subscribe(subject, {
      callback: (_err, msg) => {
        const maxPayload = server.info?.max_payload ?? 1024 * 1024;
        for (const m of answer(splitReply(reply(3 * 1024 * 1024), maxPayload))) {
          msg.respond(m);
        }
      },
    });
    await server.flush();
    return sub;
  }

  it('should reassemble a 3 MiB reply the server cannot carry in one message', async () => {
    const sub = await serve('t.whole', (m) => m);
    try {
      const r = await requestReply(client, 't.whole', new Uint8Array(), 10_000);
      expect(r.result.case).toBe('execute');
      expect(r.result.value && 'stdout' in r.result.value && r.result.value.stdout.length).toBe(
        3 * 1024 * 1024,
      );
      // Concurrent requests share the connection's inbox without mixing their parts.
      const many = await Promise.all(
        [1, 2, 3].map(() => requestReply(client, 't.whole', new Uint8Array(), 10_000)),
      );
      expect(many.every((x) => x.result.case === 'execute')).toBe(true);
    } finally {
      sub.unsubscribe();
    }
  });

  it('should fail a reply whose part never comes after the stall time, naming the progress', async () => {
    const sub = await serve('t.lost', (m) => m.filter((_, i) => i !== 1));
    try {
      const err = await requestReply(client, 't.lost', new Uint8Array(), 10_000, {
        partStallMs: 500,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReplyPartsError);
      expect((err as Error).message).toMatch(/reply incomplete: \d+ of \d+ parts/);
    } finally {
      sub.unsubscribe();
    }
  });

  it('should refuse a reply over its bound', async () => {
    const sub = await serve('t.big', (m) => m);
    try {
      const err = await requestReply(client, 't.big', new Uint8Array(), 10_000, {
        maxBytes: 1024 * 1024,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReplyPartsError);
      expect((err as Error).message).toMatch(/bound of 1048576/);
    } finally {
      sub.unsubscribe();
    }
  });

  it('should report no responders as the NATS client does', async () => {
    const err = await requestReply(client, 't.nobody', new Uint8Array(), 5000).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).isNoResponders()).toBe(true);
  });

  it('should take a small reply as one message', async () => {
    const sub = server.subscribe('t.small', {
      callback: (_err, msg) => {
        msg.respond(toBinary(GuestResponseSchema, reply(10)));
      },
    });
    await server.flush();
    try {
      const r = await requestReply(client, 't.small', new Uint8Array(), 5000);
      expect(r.requestId).toBe('r');
    } finally {
      sub.unsubscribe();
    }
  });
});
