import { Inject, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { Msg, Subscription } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
} from '@nats-io/jetstream';
import { subjects } from '@lq/proto';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { NatsService } from '../nats/nats.service.js';

/** Messages fetched from the stream at a time (each at most one output chunk, 64 KiB). */
const STREAM_BATCH_MESSAGES = 64;
/** How long one fetch waits for output still to come before the next is asked for. */
const STREAM_FETCH_EXPIRES_MS = 5000;

/** One execution's output as it arrives; stop() ends the delivery. */
export interface OutputFeed {
  stop(): void;
  /**
   * Reads the execution's output from the stream from its first chunk on, instead of NATS core:
   * chunks went missing (a gap in their sequence, or fewer bytes than the command wrote). True
   * when the stream is (or already was) being read; false without JetStream.
   */
  replay(): boolean;
}

/** Where a chunk came from: NATS core (live, may drop) or the stream (in order, from the first). */
export type FeedSource = 'core' | 'stream';

/**
 * Delivers the output an execution's node daemon publishes on its subject
 * (`lq.v1.node.<node>.exec.<id>.output`, PROTOCOL.md §9) to the replica that drives it.
 *
 * With JetStream (LQ_EXEC_OUTPUT_JETSTREAM, the default `optional`) the subjects are captured by
 * a stream, whether anyone reads them or not. An execution's output is first read over NATS core,
 * which costs nothing when there is none (most commands of a fleet run: an ordered consumer per
 * execution would cost a stream lookup, a consumer creation and its deletion each, more than the
 * execution itself); as soon as a chunk is missing (the server drops messages to a replica that
 * falls behind), the command wrote more than arrived, or the driver has no room for more while
 * the database is slow, the driver asks for a replay and the
 * execution is read by an ordered consumer from its first chunk, at this replica's pace. A feed
 * started late (another replica adopting the execution) reads the stream from the start. Nothing
 * the stream holds is lost either way. Without JetStream it is NATS core alone (the execution is
 * flagged output_truncated when chunks went missing).
 */
@Injectable()
export class ExecOutputFeeds implements OnApplicationBootstrap {
  private readonly log = new Logger('executions');
  /** Set once the stream is there: output is read from it. */
  private js: JetStreamClient | undefined;

  constructor(
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  /** True when output comes through the JetStream stream. */
  get durable(): boolean {
    return this.js !== undefined;
  }

  async onApplicationBootstrap(): Promise<void> {
    const cfg = this.config.execOutputStream;
    if (cfg.jetstream === 'off') {
      this.log.warn(
        'LQ_EXEC_OUTPUT_JETSTREAM=off: execution output travels over NATS core, which drops it for a replica that falls behind',
      );
      return;
    }
    try {
      const how = await this.ensureStream();
      this.js = jetstream(this.nats.connection, { timeout: cfg.timeoutMs });
      this.log.log(`execution output goes through JetStream stream ${cfg.stream} (${how})`);
    } catch (err) {
      if (cfg.jetstream === 'required') {
        throw new Error(`LQ_EXEC_OUTPUT_JETSTREAM=required: ${(err as Error).message}`, {
          cause: err,
        });
      }
      this.log.warn(
        `execution output travels over NATS core (it is dropped for a replica that falls behind) until JetStream stream ${cfg.stream} can be used: ${(err as Error).message}`,
      );
    }
  }

  /** Creates the stream when missing; says whether it was there. */
  private async ensureStream(): Promise<'existing' | 'created'> {
    const cfg = this.config.execOutputStream;
    const jsm = await jetstreamManager(this.nats.connection, { timeout: cfg.timeoutMs });
    try {
      await jsm.streams.info(cfg.stream);
      return 'existing';
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) {
        throw err;
      }
    }
    await jsm.streams.add({
      name: cfg.stream,
      subjects: [subjects.allExecOutput],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_bytes: cfg.maxBytes,
      max_age: cfg.maxAgeSeconds * 1e9,
      num_replicas: cfg.streamReplicas,
    });
    return 'created';
  }

  /**
   * Starts delivering execution `executionId`'s output from node `nodeId` to `onData`, in the
   * order it was published: over NATS core until replay() is called, or from the stream's first
   * chunk at once with `fromStart` (when JetStream is there). From the stream, a promise
   * `onData` returns holds the delivery until it settles (the reader has no room yet); NATS core
   * cannot wait. Throws (synchronously) when NATS is closed.
   */
  follow(
    nodeId: string,
    executionId: string,
    onData: (data: Uint8Array, source: FeedSource) => void | Promise<void>,
    options: { fromStart?: boolean } = {},
  ): OutputFeed {
    const subject = subjects.execOutput(nodeId, executionId);
    if (this.nats.connection.isClosed()) {
      throw new Error('the NATS connection is closed');
    }
    let stopped = false;
    // NATS core until a replay is asked for; `failed` when the stream could not be read.
    let mode: 'core' | 'replaying' | 'failed' = 'core';
    const subscribeLive = () =>
      this.nats.connection.subscribe(subject, {
        callback: (err, msg: Msg) => {
          if (!err && !stopped) {
            void onData(msg.data, 'core');
          }
        },
      });
    let live: Subscription | undefined = subscribeLive();
    // The batch being read from the stream, closed by stop().
    let batch: ConsumerMessages | undefined;
    const cfg = this.config.execOutputStream;
    const replay = (): boolean => {
      const js = this.js;
      if (mode !== 'core' || !js || stopped) {
        return mode === 'replaying';
      }
      mode = 'replaying';
      void (async () => {
        const consumer = await js.consumers.get(cfg.stream, {
          filter_subjects: subject,
          deliver_policy: DeliverPolicy.All,
        });
        let first = true;
        // Batch after batch, each fetched once the last is taken: a reader that waits (its
        // buffer is full while the database is slow) leaves the rest in the stream, not in memory.
        while (!stopped) {
          batch = await consumer.fetch({
            max_messages: STREAM_BATCH_MESSAGES,
            expires: STREAM_FETCH_EXPIRES_MS,
          });
          if (first) {
            // From here on the stream delivers everything, what core had delivered included.
            first = false;
            live?.unsubscribe();
            live = undefined;
          }
          for await (const m of batch) {
            if (stopped) {
              break;
            }
            await onData(m.data, 'stream');
          }
        }
        await consumer.delete().catch(() => undefined);
      })().catch((err: Error) => {
        if (stopped) {
          return;
        }
        // Better what is still to come than nothing: the execution is flagged if bytes are missing.
        mode = 'failed';
        this.log.warn(
          `output of ${executionId} is not read from ${cfg.stream} (${err.message}): NATS core only`,
        );
        if (!live) {
          live = subscribeLive();
        }
      });
      return true;
    };
    if (options.fromStart) {
      replay();
    }
    return {
      replay,
      stop: () => {
        stopped = true;
        live?.unsubscribe();
        void batch?.close().catch(() => undefined);
      },
    };
  }
}
