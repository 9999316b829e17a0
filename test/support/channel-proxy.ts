// A fault-injection double for an agent channel: it serves `listenPath` (the socket the node
// daemon finds in its channel dir), relays each connection to the real agent at `targetPath`,
// and lets a test add bytes in either direction, freeze the channel or cut it.
import { lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface ChannelProxyOptions {
  /** Unix socket to serve (a stale socket file there is replaced). */
  listenPath: string;
  /** The real agent's socket. */
  targetPath: string;
}

export interface ChannelProxyStats {
  /** Host connections accepted so far. */
  connections: number;
  /** Bytes relayed agent → host and host → agent, injected bytes not counted. */
  bytesToHost: number;
  bytesToAgent: number;
}

export interface ChannelProxy {
  readonly listenPath: string;
  readonly targetPath: string;
  readonly stats: Readonly<ChannelProxyStats>;
  /** Host connections open now. */
  readonly openConnections: number;
  /** Resolves once a host connection is open (immediately if one is). */
  waitForConnection(timeoutMs?: number): Promise<void>;
  /**
   * Queues bytes on the newest host connection as if the agent had sent them, in order with
   * what is relayed (between relayed chunks, so it can land inside a large frame the agent is
   * sending). Throws when no host is connected.
   */
  injectToHost(bytes: Uint8Array): void;
  /** Queues bytes toward the agent as if the host had sent them. Throws when none is connected. */
  injectToAgent(bytes: Uint8Array): void;
  /**
   * Stops relaying both ways (bytes wait in the socket buffers): a channel whose other end
   * hangs. Connections stay open; resume() delivers what waited.
   */
  pause(): void;
  resume(): void;
  /** Cuts every relayed connection at once (both ends see the connection drop). */
  dropConnections(): void;
  /** Stops listening, cuts every connection, removes listenPath. Idempotent. */
  close(): Promise<void>;
}

export async function startChannelProxy(options: ChannelProxyOptions): Promise<ChannelProxy> {
  const proxy = new ChannelProxyServer(options);
  await proxy.listen();
  return proxy;
}

class Pair {
  private hostBlocked = false;
  private agentBlocked = false;

  constructor(
    readonly host: Socket,
    readonly agent: Socket,
    private readonly proxy: ChannelProxyServer,
    private readonly onClosed: (pair: Pair) => void,
  ) {
    this.relay(agent, host, 'toHost');
    this.relay(host, agent, 'toAgent');
    for (const [socket, other] of [
      [host, agent],
      [agent, host],
    ] as const) {
      socket.on('error', () => undefined);
      // One end gone: flush what is already on its way to the other, then close that too.
      socket.on('close', () => {
        if (!other.destroyed) {
          other.end();
          setTimeout(() => other.destroy(), 1000).unref();
        }
        if (host.destroyed && agent.destroyed) {
          this.onClosed(this);
        }
      });
    }
    this.updateFlow();
  }

  get open(): boolean {
    return !this.host.destroyed && !this.agent.destroyed;
  }

  updateFlow(): void {
    if (this.proxy.paused || this.hostBlocked) {
      this.agent.pause();
    } else {
      this.agent.resume();
    }
    if (this.proxy.paused || this.agentBlocked) {
      this.host.pause();
    } else {
      this.host.resume();
    }
  }

  destroy(): void {
    this.host.destroy();
    this.agent.destroy();
  }

  private relay(from: Socket, to: Socket, direction: 'toHost' | 'toAgent'): void {
    from.on('data', (chunk: Buffer) => {
      if (direction === 'toHost') {
        this.proxy.counters.bytesToHost += chunk.length;
      } else {
        this.proxy.counters.bytesToAgent += chunk.length;
      }
      if (to.destroyed || to.write(chunk)) {
        return;
      }
      // Back-pressure: stop reading until the other end drains.
      this.setBlocked(direction, true);
      to.once('drain', () => this.setBlocked(direction, false));
    });
  }

  private setBlocked(direction: 'toHost' | 'toAgent', blocked: boolean): void {
    if (direction === 'toHost') {
      this.hostBlocked = blocked;
    } else {
      this.agentBlocked = blocked;
    }
    this.updateFlow();
  }
}

class ChannelProxyServer implements ChannelProxy {
  readonly listenPath: string;
  readonly targetPath: string;
  readonly counters: ChannelProxyStats = { connections: 0, bytesToHost: 0, bytesToAgent: 0 };
  paused = false;
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private connectionWaiters = new Set<() => void>();
  private closed: Promise<void> | undefined;

  constructor(options: ChannelProxyOptions) {
    this.listenPath = options.listenPath;
    this.targetPath = options.targetPath;
    this.server = createServer({ noDelay: true }, (host) => this.accept(host));
  }

  get stats(): Readonly<ChannelProxyStats> {
    return { ...this.counters };
  }

  get openConnections(): number {
    return [...this.pairs].filter((p) => p.open).length;
  }

  async listen(): Promise<void> {
    removeStaleSocket(this.listenPath);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.listenPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  waitForConnection(timeoutMs = 5000): Promise<void> {
    if (this.openConnections > 0) {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.connectionWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.connectionWaiters.delete(done);
        reject(new Error(`no host connected to ${this.listenPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.connectionWaiters.add(done);
    });
  }

  injectToHost(bytes: Uint8Array): void {
    this.inject('host', bytes);
  }

  injectToAgent(bytes: Uint8Array): void {
    this.inject('agent', bytes);
  }

  pause(): void {
    this.paused = true;
    this.pairs.forEach((p) => p.updateFlow());
  }

  resume(): void {
    this.paused = false;
    this.pairs.forEach((p) => p.updateFlow());
  }

  dropConnections(): void {
    this.pairs.forEach((p) => p.destroy());
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.dropConnections();
    }).then(() => removeStaleSocket(this.listenPath));
    return this.closed;
  }

  private accept(host: Socket): void {
    if (this.closed) {
      host.destroy();
      return;
    }
    this.counters.connections++;
    // Node buffers what the host writes before the agent connection is up.
    const agent = createConnection(this.targetPath);
    agent.setNoDelay(true);
    const pair = new Pair(host, agent, this, (p) => this.pairs.delete(p));
    this.pairs.add(pair);
    this.connectionWaiters.forEach((w) => w());
  }

  private inject(side: 'host' | 'agent', bytes: Uint8Array): void {
    const pair = [...this.pairs].reverse().find((p) => p.open);
    if (!pair) {
      throw new Error(`no open connection through ${this.listenPath}`);
    }
    // A write error means the connection dropped, which the pair already handles.
    (side === 'host' ? pair.host : pair.agent).write(bytes);
  }
}

function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) {
    throw new Error(`${path} exists and is not a socket`);
  }
  unlinkSync(path);
}
