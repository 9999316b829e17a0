// A request in flight when the NATS server carrying it dies (issue 18 item 9), over a real
// cluster of two nats-servers: the requester's connection moves to the other server. A request
// that may be sent again (read-only, or answered by its request id) is published again once the
// connection is back and answered; any other fails at once with ConnectionLostError instead of
// waiting for its whole timeout. The tests assert the outcome; how fast is for npm run faults.
import { afterEach, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { GuestResponseSchema } from '@lq/proto';
import { ConnectionLostError, requestReply } from '@lq/host';
import {
  startNatsCluster,
  type RunningNatsCluster,
} from '../../../../test/support/nats-cluster.js';

const ANSWER = toBinary(
  GuestResponseSchema,
  create(GuestResponseSchema, { requestId: 'r', result: { case: 'pong', value: {} } }),
);

describe('a request whose NATS server dies under it', () => {
  let cluster: RunningNatsCluster | undefined;
  const conns: NatsConnection[] = [];

  afterEach(async () => {
    await Promise.all(conns.splice(0).map((c) => c.close()));
    await cluster?.stop();
  });

  /** A requester on the first server, a slow responder (1.5 s) on the second. */
  async function setup() {
    cluster = await startNatsCluster(2);
    const [first, second] = cluster.members;
    const requester = await connect({
      servers: [first!.nats.url, second!.nats.url],
      noRandomize: true,
      reconnectTimeWait: 100,
      maxReconnectAttempts: -1,
    });
    const responder = await connect({ servers: second!.nats.url });
    conns.push(requester, responder);
    let received = 0;
    responder.subscribe('t.slow', {
      callback: (_err, msg) => {
        received++;
        setTimeout(() => msg.respond(ANSWER), 1500);
      },
    });
    await responder.flush();
    // The subscription has reached the first server through the route.
    await new Promise((r) => setTimeout(r, 300));
    return { requester, first: first!, received: () => received };
  }

  it('should fail a request that may not be sent again with ConnectionLostError, not at its timeout', async () => {
    const { requester, first } = await setup();
    const pending = requestReply(requester, 't.slow', new Uint8Array(), 60_000).catch(
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 200));
    process.kill(first.nats.pid, 'SIGKILL');
    const err = await pending;
    expect(err).toBeInstanceOf(ConnectionLostError);
    expect((err as Error).message).toMatch(/went away while it was in flight/);
  }, 60_000);

  it('should send a request that may be sent again once more, and be answered', async () => {
    const { requester, first, received } = await setup();
    let sends = 0;
    const payload = () => {
      sends++;
      return new Uint8Array();
    };
    const pending = requestReply(requester, 't.slow', payload(), 60_000, {}, payload);
    await new Promise((r) => setTimeout(r, 200));
    process.kill(first.nats.pid, 'SIGKILL');
    const reply = await pending;
    expect(reply.result.case).toBe('pong');
    expect(sends).toBe(2);
    expect(received()).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
