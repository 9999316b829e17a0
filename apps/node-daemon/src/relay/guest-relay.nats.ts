import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { Msg, Subscription } from '@nats-io/transport-node';
import {
  GuestRequestSchema,
  GuestResponseSchema,
  guestOperationOf,
  subjects,
  type GuestResponse,
} from '@lq/proto';
import { splitReply } from '@lq/host';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';
import { NatsService } from '../nats/nats.service.js';
import { GuestRelayService } from './guest-relay.service.js';

/**
 * The NATS transport of the relay: one wildcard subscription on this node's guest subjects,
 * protobuf in and out, one service call per message. Nest's NATS microservice transport is not
 * used: it wraps payloads in its own JSON envelope and subscribes to static patterns, while
 * these subjects carry raw protobuf and name this node at run time.
 */
const SHUTDOWN_GRACE_MS = 5000;

@Injectable()
export class GuestRelayNatsTransport implements BeforeApplicationShutdown {
  private readonly log = new Logger('relay-nats');
  private sub: Subscription | undefined;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    @Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(GuestRelayService) private readonly relay: GuestRelayService,
  ) {}

  listen(): void {
    const nc = this.nats.connection;
    this.relay.setNatsMaxPayload(this.nats.maxPayload);
    const subject = subjects.guestWildcard(this.config.nodeId);
    this.sub = nc.subscribe(subject, {
      callback: (err, msg) => (err ? this.log.error(err.message) : this.onMessage(msg)),
    });
    this.log.log(`serving ${subject}`);
  }

  private onMessage(msg: Msg): void {
    if (!msg.reply) {
      this.log.warn(`dropped ${msg.subject}: no reply subject (use request/reply)`);
      return;
    }
    const op = guestOperationOf(msg.subject, this.config.nodeId);
    if (!op) {
      this.reply(msg, this.relay.invalid(`unknown guest operation in subject ${msg.subject}`));
      return;
    }
    let request;
    try {
      request = fromBinary(GuestRequestSchema, msg.data);
    } catch (err) {
      this.reply(
        msg,
        this.relay.invalid(`payload is not a GuestRequest: ${(err as Error).message}`),
      );
      return;
    }
    const work = this.relay.handle(op, request).then((response) => this.reply(msg, response));
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  /**
   * Answers on the request's reply subject: one message, or the reply in parts when it is larger
   * than the server's max_payload (PROTOCOL.md §9 Reply parts), so a large answer is never lost.
   */
  private reply(msg: Msg, response: GuestResponse): void {
    let messages: Uint8Array[];
    try {
      messages = splitReply(response, this.nats.maxPayload);
    } catch (err) {
      this.log.error(`could not split the reply on ${msg.subject}: ${(err as Error).message}`);
      messages = [toBinary(GuestResponseSchema, this.relay.internal(response, err as Error))];
    }
    try {
      for (const m of messages) {
        msg.respond(m);
      }
    } catch (err) {
      this.log.error(`could not reply on ${msg.subject}: ${(err as Error).message}`);
    }
  }

  /** Stops taking requests and lets those in flight answer (bounded) before NATS drains. */
  async beforeApplicationShutdown(): Promise<void> {
    this.sub?.unsubscribe();
    if (this.inflight.size > 0) {
      this.log.log(`waiting for ${this.inflight.size} requests in flight`);
      await Promise.race([Promise.allSettled([...this.inflight]), sleep(SHUTDOWN_GRACE_MS)]);
    }
  }
}
