import { createServer, type Server, type Socket } from 'node:net';
import {
  ChannelClosedError,
  coalesceSmallFrame,
  smallRunsJoined,
  type ChannelListener,
  type HostChannel,
} from './host-channel.js';
import { bindPrivately, removeStale } from './socket-path.js';

/**
 * Under Bun a corked socket joins what was written into one new buffer when uncorked: a 1 MiB
 * file chunk was copied once more for nothing (about a tenth of the agent's CPU on 1 MiB reads).
 * There a large frame goes out as written, its small parts joined first (smallRunsJoined), so
 * the bulk bytes are never copied. Node's cork is a real writev.
 */
const UNCORKED = process.versions.bun !== undefined;

/**
 * A Unix socket the agent listens on, standing in for QEMU's chardev socket (development,
 * tests, the simulated VMs). Like virtio-serial it serves one host at a time: a new connection
 * replaces the old one, as a reconnecting node daemon would.
 */
export class SocketListenChannel implements HostChannel {
  readonly description: string;
  private server: Server | undefined;
  private socket: Socket | undefined;
  private paused = false;

  constructor(private readonly path: string) {
    this.description = `unix socket ${path}`;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  async start(listener: ChannelListener): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.adopt(socket, listener));
    this.server = server;
    const listen = (path: string) =>
      new Promise<{ close: () => Promise<void> }>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve({ close: () => closeServer(server) });
        });
      });
    await bindPrivately(this.path, listen);
  }

  private adopt(socket: Socket, listener: ChannelListener): void {
    const previous = this.socket;
    this.socket = socket;
    if (previous) {
      previous.removeAllListeners('close');
      previous.destroy();
      listener.onDisconnect('replaced by a new host connection');
    }
    if (this.paused) {
      socket.pause();
    }
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) {
        listener.onData(chunk);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) {
        this.socket = undefined;
        listener.onDisconnect('host closed the connection');
      }
    });
    listener.onConnect();
  }

  write(frame: Uint8Array[]): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.destroyed) {
      return Promise.reject(new ChannelClosedError());
    }
    const small = coalesceSmallFrame(frame);
    const parts = UNCORKED && small.length > 1 ? smallRunsJoined(small) : small;
    return new Promise((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (parts.length === 1) {
        socket.write(parts[0]!, done);
        return;
      }
      if (UNCORKED) {
        for (let i = 0; i < parts.length - 1; i++) {
          socket.write(parts[i]!);
        }
        socket.write(parts[parts.length - 1]!, done);
        return;
      }
      socket.cork();
      for (let i = 0; i < parts.length - 1; i++) {
        socket.write(parts[i]!);
      }
      socket.write(parts[parts.length - 1]!, done);
      socket.uncork();
    });
  }

  pause(): void {
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket?.resume();
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    this.socket = undefined;
    const server = this.server;
    this.server = undefined;
    if (server) {
      await closeServer(server);
    }
    await removeStale(this.path).catch(() => undefined);
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
