import {
  ChannelClosedError,
  coalesceSmallFrame,
  smallRunsJoined,
  type ChannelListener,
  type HostChannel,
} from './host-channel.js';
import { bindPrivately, removeStale } from './socket-path.js';
import { SocketListenChannel } from './socket-listen.channel.js';

/** The part of Bun's own socket API used here (the project does not depend on bun-types). */
export interface NativeSocket {
  /** Unbuffered: the bytes the kernel took (fewer when its buffer is full), -1 once closed. */
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  pause(): void;
  resume(): void;
  terminate(): void;
}

export interface NativeSocketHandlers {
  open(socket: NativeSocket): void;
  data(socket: NativeSocket, data: Buffer): void;
  drain(socket: NativeSocket): void;
  close(socket: NativeSocket, error?: Error): void;
  error(socket: NativeSocket, error: Error): void;
}

export interface NativeListener {
  stop(closeActiveConnections?: boolean): void;
}

export interface NativeRuntime {
  listen(options: { unix: string; socket: NativeSocketHandlers }): NativeListener;
}

/**
 * Bun's socket API, when the agent runs as the compiled executable; undefined under Node, and
 * on Windows (where --listen stays with node:net, as it was: this channel is measured and
 * tested on Linux only).
 */
function nativeSockets(): NativeRuntime | undefined {
  const bun = (globalThis as { Bun?: Partial<NativeRuntime> }).Bun;
  return typeof bun?.listen === 'function' && process.platform !== 'win32'
    ? (bun as NativeRuntime)
    : undefined;
}

/**
 * The channel for `--listen PATH`: on Bun's own sockets in the compiled agent, on node:net
 * under Node (the unit tests, the simulated VMs) and on Windows.
 */
export function listenChannel(path: string): HostChannel {
  const runtime = nativeSockets();
  return runtime ? new NativeSocketListenChannel(runtime, path) : new SocketListenChannel(path);
}

/**
 * Runs a listener call from a socket handler. Bun gives an exception thrown in a handler to the
 * socket's error handler and keeps going, where node:net's would be uncaught; it is thrown again
 * outside the handler, so the agent logs it as it does every uncaught exception (main.ts).
 */
function raisedOutside(call: () => void): void {
  try {
    call();
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** Bytes of a frame the kernel has not taken yet, and who waits for the frame's last byte. */
interface PendingWrite {
  buf: Uint8Array;
  offset: number;
  done?: { resolve: () => void; reject: (err: Error) => void };
}

/**
 * SocketListenChannel's behaviour on Bun's own socket API, which the compiled agent uses: one
 * host at a time (a new connection replaces the old), bound with mode 0600 before the path
 * appears. node:net under Bun is a stream layer over the same sockets; here a reply goes to the
 * kernel in the call that wrote it, with no stream bookkeeping or callback in between (the
 * agent's CPU per 4 KiB read and per ping is lower). Bun's writes are unbuffered: what the
 * kernel does not take waits here, in order, for the socket's drain.
 */
export class NativeSocketListenChannel implements HostChannel {
  readonly description: string;
  private server: NativeListener | undefined;
  private socket: NativeSocket | undefined;
  private paused = false;
  private queue: PendingWrite[] = [];

  constructor(
    private readonly runtime: NativeRuntime,
    private readonly path: string,
  ) {
    this.description = `unix socket ${path}`;
  }

  get connected(): boolean {
    return this.socket !== undefined;
  }

  async start(listener: ChannelListener): Promise<void> {
    const bound = await bindPrivately(this.path, (path) => {
      const server = this.runtime.listen({ unix: path, socket: this.handlers(listener) });
      return { server, close: () => server.stop(true) };
    });
    this.server = bound.server;
  }

  private handlers(listener: ChannelListener): NativeSocketHandlers {
    return {
      open: (socket) => {
        const previous = this.socket;
        this.socket = socket;
        if (previous) {
          this.failQueued();
          previous.terminate();
          raisedOutside(() => listener.onDisconnect('replaced by a new host connection'));
        }
        if (this.paused) {
          socket.pause();
        }
        raisedOutside(() => listener.onConnect());
      },
      data: (socket, data) => {
        if (this.socket === socket) {
          raisedOutside(() => listener.onData(data));
        }
      },
      drain: (socket) => {
        if (this.socket === socket) {
          this.flush(socket);
        }
      },
      close: (socket) => {
        if (this.socket === socket) {
          this.socket = undefined;
          this.failQueued();
          raisedOutside(() => listener.onDisconnect('host closed the connection'));
        }
      },
      // The connection's own errors; it closes next (close above).
      error: () => undefined,
    };
  }

  write(frame: Uint8Array[]): Promise<void> {
    const socket = this.socket;
    if (!socket) {
      return Promise.reject(new ChannelClosedError());
    }
    const small = coalesceSmallFrame(frame);
    const parts = small.length > 1 ? smallRunsJoined(small) : small;
    if (parts.length === 0) {
      return Promise.resolve();
    }
    const idle = this.queue.length === 0;
    const written = new Promise<void>((resolve, reject) => {
      for (const buf of parts) {
        this.queue.push({ buf, offset: 0 });
      }
      this.queue[this.queue.length - 1]!.done = { resolve, reject };
    });
    // Straight to the kernel unless earlier frames wait for the drain (which goes on then).
    if (idle) {
      this.flush(socket);
    }
    return written;
  }

  /** Writes what waits, in order, until the kernel takes no more (the next drain goes on). */
  private flush(socket: NativeSocket): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const left = head.buf.length - head.offset;
      const n = socket.write(head.buf, head.offset, left);
      if (n < 0) {
        this.failQueued();
        return;
      }
      if (n < left) {
        head.offset += n;
        return;
      }
      this.queue.shift();
      head.done?.resolve();
    }
  }

  private failQueued(): void {
    const queued = this.queue;
    this.queue = [];
    for (const pending of queued) {
      pending.done?.reject(new ChannelClosedError('host connection closed'));
    }
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
    const socket = this.socket;
    this.socket = undefined;
    this.failQueued();
    socket?.terminate();
    this.server?.stop(true);
    this.server = undefined;
    await removeStale(this.path).catch(() => undefined);
  }
}
