import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, drainNats, type NatsLink } from '@lq/runtime';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';

/**
 * The daemon's one NATS connection. It reconnects forever by default (a NATS restart must not
 * end the daemon), and drains on shutdown so replies in flight still go out.
 */
@Injectable()
export class NatsService implements OnApplicationShutdown {
  private link: NatsLink | undefined;

  constructor(@Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig) {}

  get connection(): NatsConnection {
    if (!this.link) {
      throw new Error('NATS is not connected yet');
    }
    return this.link.nc;
  }

  /** Largest payload the server accepts. */
  get maxPayload(): number {
    return this.link?.nc.info?.max_payload ?? 1024 * 1024;
  }

  async connect(): Promise<NatsConnection> {
    const { nats, nodeId } = this.config;
    this.link = await connectNats(
      { ...nats, name: `lq-node-daemon-${nodeId}`, reconnectTimeWaitMs: nats.reconnectTimeWaitMs },
      new Logger('nats'),
    );
    return this.link.nc;
  }

  async onApplicationShutdown(): Promise<void> {
    await drainNats(this.link?.nc);
  }
}
