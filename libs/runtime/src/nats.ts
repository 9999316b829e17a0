import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import type { NatsEnv } from './env.js';

export interface NatsConnectOptions extends NatsEnv {
  name: string;
  /** -1: never give up (a NATS restart must not end a service). */
  maxReconnectAttempts: number;
  reconnectTimeWaitMs: number;
}

export interface NatsLink {
  nc: NatsConnection;
  /** False while disconnected and reconnecting. */
  readonly connected: boolean;
  /** How many times the connection came back since it was made. */
  readonly reconnects: number;
}

/**
 * Connects and logs disconnects and reconnects, counting the reconnects and calling
 * `onReconnect` after each; drain() is the caller's on shutdown.
 */
export async function connectNats(
  options: NatsConnectOptions,
  log: { log(m: string): void; warn(m: string): void; error(m: string): void },
  onReconnect?: () => void,
): Promise<NatsLink> {
  const nc = await connect({
    servers: options.servers,
    name: options.name,
    user: options.user,
    pass: options.pass,
    token: options.token,
    authenticator: options.credsFile
      ? credsAuthenticator(new Uint8Array(readFileSync(options.credsFile)))
      : undefined,
    // An object, even empty, makes nats.js refuse a server that does not offer TLS; the files
    // are read at each (re)connection, so renewed certificates are picked up.
    tls: options.tls
      ? { caFile: options.tls.caFile, certFile: options.tls.certFile, keyFile: options.tls.keyFile }
      : undefined,
    maxReconnectAttempts: options.maxReconnectAttempts,
    reconnectTimeWait: options.reconnectTimeWaitMs,
    pingInterval: options.pingIntervalMs,
    maxPingOut: options.maxPingOut,
    // Otherwise every request builds an Error up front (for a stack trace if it fails): the
    // largest single cost the client adds to a request on the control plane's hot path. A
    // failed request is still named by its subject in our own errors.
    noAsyncTraces: true,
  });
  log.log(`connected to NATS at ${nc.getServer()}`);
  const link = { nc, connected: true, reconnects: 0 };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        link.connected = false;
        log.warn(`disconnected from NATS at ${s.server}`);
      } else if (s.type === 'reconnect') {
        link.connected = true;
        link.reconnects++;
        log.log(`reconnected to NATS at ${s.server}`);
        onReconnect?.();
      } else if (s.type === 'error') {
        log.error(`NATS error: ${String(s.error)}`);
      }
    }
  })();
  return link;
}

/** Drains (flushing replies in flight), falling back to close. */
export async function drainNats(nc: NatsConnection | undefined): Promise<void> {
  if (nc && !nc.isClosed()) {
    await nc.drain().catch(() => nc.close());
  }
}
