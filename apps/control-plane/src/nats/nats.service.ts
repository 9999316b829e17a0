import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, drainNats, type NatsLink } from '@lq/runtime';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';

/** The control plane's NATS connection: reconnects forever, drains on shutdown. */
@Injectable()
export class NatsService implements OnApplicationShutdown {
  private link: NatsLink | undefined;

  constructor(@Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig) {}

  get connection(): NatsConnection {
    if (!this.link) {
      throw new Error('NATS is not connected yet');
    }
    return this.link.nc;
  }

  /** For /health: connected, not closed, not draining. */
  get healthy(): boolean {
    const nc = this.link?.nc;
    return nc !== undefined && this.link!.connected && !nc.isClosed() && !nc.isDraining();
  }

  async connect(name: string): Promise<NatsConnection> {
    this.link = await connectNats(
      { ...this.config.nats, name, maxReconnectAttempts: -1, reconnectTimeWaitMs: 500 },
      new Logger('nats'),
    );
    return this.link.nc;
  }

  async onApplicationShutdown(): Promise<void> {
    await drainNats(this.link?.nc);
  }
}
