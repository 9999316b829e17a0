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
  private readonly reconnectListeners = new Set<() => void>();

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

  /**
   * How many times the connection came back since the daemon started: each time, a request or
   * reply in flight with the server that went away may have been lost (the heartbeat says so).
   */
  get reconnects(): number {
    return this.link?.reconnects ?? 0;
  }

  /** Calls `listener` each time the connection came back. */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.add(listener);
  }

  async connect(): Promise<NatsConnection> {
    const { nats, nodeId } = this.config;
    this.link = await connectNats(
      { ...nats, name: `lq-node-daemon-${nodeId}`, reconnectTimeWaitMs: nats.reconnectTimeWaitMs },
      new Logger('nats'),
      () => {
        for (const l of this.reconnectListeners) {
          l();
        }
      },
    );
    return this.link.nc;
  }

  async onApplicationShutdown(): Promise<void> {
    await drainNats(this.link?.nc);
  }
}
