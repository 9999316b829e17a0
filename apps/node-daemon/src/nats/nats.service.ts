import { readFileSync } from 'node:fs';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';

/**
 * The daemon's one NATS connection. It reconnects forever by default (a NATS restart must not
 * end the daemon), and drains on shutdown so replies in flight still go out.
 */
@Injectable()
export class NatsService implements OnApplicationShutdown {
  private readonly log = new Logger('nats');
  private nc: NatsConnection | undefined;

  constructor(@Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig) {}

  get connection(): NatsConnection {
    if (!this.nc) {
      throw new Error('NATS is not connected yet');
    }
    return this.nc;
  }

  /** Largest payload the server accepts. */
  get maxPayload(): number {
    return this.nc?.info?.max_payload ?? 1024 * 1024;
  }

  async connect(): Promise<NatsConnection> {
    const { nats, nodeId } = this.config;
    this.nc = await connect({
      servers: nats.servers,
      name: `lq-node-daemon-${nodeId}`,
      user: nats.user,
      pass: nats.pass,
      token: nats.token,
      authenticator: nats.credsFile
        ? credsAuthenticator(new Uint8Array(readFileSync(nats.credsFile)))
        : undefined,
      maxReconnectAttempts: nats.maxReconnectAttempts,
      reconnectTimeWait: nats.reconnectTimeWaitMs,
      waitOnFirstConnect: false,
    });
    this.log.log(`connected to ${this.nc.getServer()}`);
    void this.watchStatus(this.nc);
    return this.nc;
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.log.warn(`disconnected from ${s.server}`);
          break;
        case 'reconnect':
          this.log.log(`reconnected to ${s.server}`);
          break;
        case 'error':
          this.log.error(`NATS error: ${String(s.error)}`);
          break;
        default:
          break;
      }
    }
  }

  async onApplicationShutdown(): Promise<void> {
    const nc = this.nc;
    if (nc && !nc.isClosed()) {
      await nc.drain().catch(() => nc.close());
    }
  }
}
