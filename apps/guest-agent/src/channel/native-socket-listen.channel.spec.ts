import { statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ChannelClosedError, type ChannelListener } from './host-channel.js';
import {
  listenChannel,
  NativeSocketListenChannel,
  type NativeRuntime,
  type NativeSocket,
  type NativeSocketHandlers,
} from './native-socket-listen.channel.js';
import { SocketListenChannel } from './socket-listen.channel.js';

/**
 * A stand-in for one of Bun's sockets (the real one exists only in the compiled agent, which the
 * integration suites drive): the kernel takes at most `room` bytes until drained.
 */
class FakeSocket implements NativeSocket {
  taken: number[] = [];
  room = Infinity;
  closed = false;
  paused = false;
  terminated = false;

  write(data: Uint8Array, byteOffset = 0, byteLength = data.length - byteOffset): number {
    if (this.closed) {
      return -1;
    }
    const n = Math.min(byteLength, this.room);
    this.room -= n;
    this.taken.push(...data.subarray(byteOffset, byteOffset + n));
    return n;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  terminate(): void {
    this.terminated = true;
    this.closed = true;
  }
}

class FakeRuntime implements NativeRuntime {
  handlers: NativeSocketHandlers | undefined;
  stopped = false;
  listen(options: { unix: string; socket: NativeSocketHandlers }) {
    writeFileSync(options.unix, ''); // where a real listen makes the socket file
    this.handlers = options.socket;
    return { stop: () => void (this.stopped = true) };
  }
}

describe('NativeSocketListenChannel', () => {
  let dir: string;
  let runtime: FakeRuntime;
  let channel: NativeSocketListenChannel;
  let events: string[];
  const listener: ChannelListener = {
    onConnect: () => events.push('connect'),
    onData: (chunk) => events.push(`data ${chunk.toString()}`),
    onDisconnect: (reason) => events.push(`disconnect: ${reason}`),
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lq-native-channel-'));
    runtime = new FakeRuntime();
    channel = new NativeSocketListenChannel(runtime, join(dir, 'agent.sock'));
    events = [];
    await channel.start(listener);
  });

  afterEach(async () => {
    await channel.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = (): FakeSocket => {
    const socket = new FakeSocket();
    runtime.handlers!.open(socket);
    return socket;
  };

  it('should make the socket path appear with mode 0600 only once it listens', () => {
    expect(statSync(join(dir, 'agent.sock')).mode & 0o777).toBe(0o600);
  });

  it('should refuse a write with no host connected', async () => {
    await expect(channel.write([Uint8Array.of(1)])).rejects.toBeInstanceOf(ChannelClosedError);
    expect(channel.connected).toBe(false);
  });

  it('should pass the host connection and its bytes to the listener', () => {
    const socket = connect();
    runtime.handlers!.data(socket, Buffer.from('hello'));
    expect(channel.connected).toBe(true);
    expect(events).toEqual(['connect', 'data hello']);
  });

  it('should resolve a write the kernel took whole at once', async () => {
    const socket = connect();
    await channel.write([Uint8Array.of(1, 2), Uint8Array.of(3)]);
    expect(socket.taken).toEqual([1, 2, 3]);
  });

  it('should keep what the kernel did not take, in order, and resolve each frame once drained', async () => {
    const socket = connect();
    socket.room = 3;
    const resolved: number[] = [];
    const first = channel.write([Uint8Array.of(1, 2, 3, 4, 5)]).then(() => resolved.push(1));
    // Queued behind the first frame's rest, not written before it.
    const second = channel.write([Uint8Array.of(6, 7)]).then(() => resolved.push(2));
    await Promise.resolve();
    expect(socket.taken).toEqual([1, 2, 3]);
    expect(resolved).toEqual([]);

    socket.room = 3;
    runtime.handlers!.drain(socket);
    await first;
    expect(socket.taken).toEqual([1, 2, 3, 4, 5, 6]);
    expect(resolved).toEqual([1]);

    socket.room = Infinity;
    runtime.handlers!.drain(socket);
    await second;
    expect(socket.taken).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(resolved).toEqual([1, 2]);
  });

  it('should reject the frames still queued when the host leaves, and tell the listener', async () => {
    const socket = connect();
    socket.room = 1;
    const pending = channel.write([Uint8Array.of(1, 2, 3)]);
    runtime.handlers!.close(socket);
    await expect(pending).rejects.toBeInstanceOf(ChannelClosedError);
    expect(channel.connected).toBe(false);
    expect(events).toEqual(['connect', 'disconnect: host closed the connection']);
  });

  it('should reject a write to a socket that closed under it', async () => {
    const socket = connect();
    socket.closed = true;
    await expect(channel.write([Uint8Array.of(1)])).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('should replace the host on a new connection: the old one ends, its queue fails, its bytes are ignored', async () => {
    const old = connect();
    old.room = 0;
    const pending = channel.write([Uint8Array.of(9)]);
    const next = connect();
    await expect(pending).rejects.toBeInstanceOf(ChannelClosedError);
    expect(old.terminated).toBe(true);
    runtime.handlers!.data(old, Buffer.from('stale'));
    runtime.handlers!.close(old);
    runtime.handlers!.data(next, Buffer.from('fresh'));
    expect(channel.connected).toBe(true);
    expect(events).toEqual([
      'connect',
      'disconnect: replaced by a new host connection',
      'connect',
      'data fresh',
    ]);
    await channel.write([Uint8Array.of(4)]);
    expect(next.taken).toEqual([4]);
  });

  it('should pause the host socket, and a host that connects while paused', () => {
    const first = connect();
    channel.pause();
    expect(first.paused).toBe(true);
    const second = connect();
    expect(second.paused).toBe(true);
    channel.resume();
    expect(second.paused).toBe(false);
  });

  it("should raise a listener's exception outside Bun's handler, which would swallow it", async () => {
    const other = new FakeRuntime();
    const throwing = new NativeSocketListenChannel(other, join(dir, 'throwing.sock'));
    await throwing.start({
      ...listener,
      onData: () => {
        throw new Error('decoder bug');
      },
    });
    const socket = new FakeSocket();
    other.handlers!.open(socket);
    const raised: Array<() => void> = [];
    const spy = jest
      .spyOn(globalThis, 'queueMicrotask')
      .mockImplementation((callback) => void raised.push(callback));
    try {
      expect(() => other.handlers!.data(socket, Buffer.from('x'))).not.toThrow();
    } finally {
      spy.mockRestore();
    }
    expect(raised).toHaveLength(1);
    expect(raised[0]!).toThrow('decoder bug');
    await throwing.close();
  });

  it('should end the connection, stop listening and remove the path on close', async () => {
    const socket = connect();
    await channel.close();
    expect(socket.terminated).toBe(true);
    expect(runtime.stopped).toBe(true);
    expect(() => statSync(join(dir, 'agent.sock'))).toThrow();
    expect(events).toEqual(['connect']);
  });
});

describe('listenChannel', () => {
  it('should use node:net where Bun is not the runtime (jest, the simulated VMs)', () => {
    expect(listenChannel('/tmp/unused.sock')).toBeInstanceOf(SocketListenChannel);
  });
});
