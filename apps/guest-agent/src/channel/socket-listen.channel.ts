import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { ChannelClosedError, type ChannelListener, type HostChannel } from './host-channel.js';

/**
 * A Unix socket the agent listens on, standing in for QEMU's chardev socket (development,
 * tests, the simulated VMs). Like virtio-serial it serves one host at a time: a new connection
 * replaces the old one, as a reconnecting node daemon would.
 */
export class SocketListenChannel implements HostChannel {
  readonly description: string;
  private server: Server | undefined;
  private socket: Socket | undefined;

  constructor(private readonly path: string) {
    this.description = `unix socket ${path}`;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  async start(listener: ChannelListener): Promise<void> {
    await unlink(this.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') {
        throw err;
      }
    });
    const server = createServer({ noDelay: true }, (socket) => this.adopt(socket, listener));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(this.path, 0o600);
  }

  private adopt(socket: Socket, listener: ChannelListener): void {
    const previous = this.socket;
    this.socket = socket;
    if (previous) {
      previous.removeAllListeners('close');
      previous.destroy();
      listener.onDisconnect('replaced by a new host connection');
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

  write(parts: Uint8Array[]): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.destroyed) {
      return Promise.reject(new ChannelClosedError());
    }
    return new Promise((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (parts.length === 1) {
        socket.write(parts[0]!, done);
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

  async close(): Promise<void> {
    this.socket?.destroy();
    this.socket = undefined;
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await unlink(this.path).catch(() => undefined);
  }
}
