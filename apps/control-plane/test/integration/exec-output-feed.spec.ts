// Execution output read over NATS core first, and from the JetStream stream once a chunk went
// missing (issue 18 acceptance 7: a fleet run of /bin/true creates no consumer per execution; no
// output is lost either). A real nats-server with JetStream; the feed is the control plane's.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { ExecOutputEventSchema, OutputStream, subjects } from '@lq/proto';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { parseControlPlaneEnv } from '../../src/config/env.schema.js';
import { chunkOf } from '../../src/executions/execution-driver.js';
import { ExecOutputFeeds, type FeedSource } from '../../src/executions/output-feed.js';
import type { NatsService } from '../../src/nats/nats.service.js';

describe('execution output feed (core first, the stream on a gap)', () => {
  let nats: RunningNats;
  let nc: NatsConnection;
  let pub: NatsConnection;
  let feeds: ExecOutputFeeds;
  const config = parseControlPlaneEnv({
    DATABASE_URL: 'postgres://127.0.0.1:5432/unused',
    NATS_URL: 'nats://127.0.0.1:4222',
    LQ_EXEC_OUTPUT_JETSTREAM: 'required',
    LQ_EXEC_OUTPUT_STREAM: 'LQ_FEED_TEST',
  });

  const chunk = (executionId: string, seq: number) =>
    toBinary(
      ExecOutputEventSchema,
      create(ExecOutputEventSchema, {
        executionId,
        seq: BigInt(seq),
        stream: OutputStream.STDOUT,
        data: Buffer.from(`chunk ${seq}\n`),
      }),
    );

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url });
    pub = await connect({ servers: nats.url });
    feeds = new ExecOutputFeeds({ connection: nc } as unknown as NatsService, config);
    await feeds.onApplicationBootstrap();
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await pub?.close();
    await nats?.stop();
  });

  const consumers = async () =>
    (await (await jetstreamManager(nc)).streams.info(config.execOutputStream.stream)).state
      .consumer_count;

  it('should read over NATS core and create no consumer while no chunk is missing', async () => {
    expect(feeds.durable).toBe(true);
    const got: Array<[number, FeedSource]> = [];
    const feed = feeds.follow('node-1', 'exec-core', (d, source) => {
      got.push([chunkOf(d).seq, source]);
    });
    await nc.flush();
    for (let seq = 1; seq <= 3; seq++) {
      pub.publish(subjects.execOutput('node-1', 'exec-core'), chunk('exec-core', seq));
    }
    await pub.flush();
    for (let i = 0; i < 100 && got.length < 3; i++) {
      await sleep(20);
    }
    feed.stop();
    expect(got).toEqual([
      [1, 'core'],
      [2, 'core'],
      [3, 'core'],
    ]);
    expect(await consumers()).toBe(0);
  });

  it('should deliver every chunk from the first, in order, from the stream once a replay is asked for', async () => {
    const subject = subjects.execOutput('node-1', 'exec-gap');
    // Published before the feed listens: core never sees chunk 1; the stream holds it.
    pub.publish(subject, chunk('exec-gap', 1));
    await pub.flush();
    const got: Array<[number, FeedSource]> = [];
    const feed = feeds.follow('node-1', 'exec-gap', (d, source) => {
      got.push([chunkOf(d).seq, source]);
    });
    await nc.flush();
    pub.publish(subject, chunk('exec-gap', 2));
    await pub.flush();
    for (let i = 0; i < 100 && got.length < 1; i++) {
      await sleep(20);
    }
    expect(got).toEqual([[2, 'core']]);
    expect(feed.replay()).toBe(true);
    for (let i = 0; i < 250 && got.filter(([, s]) => s === 'stream').length < 2; i++) {
      await sleep(20);
    }
    pub.publish(subject, chunk('exec-gap', 3));
    await pub.flush();
    for (let i = 0; i < 250 && got.filter(([, s]) => s === 'stream').length < 3; i++) {
      await sleep(20);
    }
    feed.stop();
    expect(got.filter(([, s]) => s === 'stream')).toEqual([
      [1, 'stream'],
      [2, 'stream'],
      [3, 'stream'],
    ]);
  });

  it('should hold the stream’s delivery while the reader waits, and lose nothing meanwhile', async () => {
    const subject = subjects.execOutput('node-1', 'exec-slow');
    for (let seq = 1; seq <= 200; seq++) {
      pub.publish(subject, chunk('exec-slow', seq));
    }
    await pub.flush();
    const got: number[] = [];
    let waiting = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const feed = feeds.follow(
      'node-1',
      'exec-slow',
      (d) => {
        const seq = chunkOf(d).seq;
        got.push(seq);
        if (seq === 10) {
          // The reader has no room: nothing more may come until it has.
          waiting++;
          return held;
        }
      },
      { fromStart: true },
    );
    // Bounded waits for an outcome, generous for a busy machine (the test asserts no time).
    for (let i = 0; i < 1500 && got.length < 10; i++) {
      await sleep(20);
    }
    await sleep(500);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(waiting).toBe(1);
    release();
    for (let i = 0; i < 1500 && got.length < 200; i++) {
      await sleep(20);
    }
    feed.stop();
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });
});
