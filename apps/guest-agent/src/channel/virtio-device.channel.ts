import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChannelClosedError,
  coalesceSmallFrame,
  type ChannelListener,
  type HostChannel,
} from './host-channel.js';

const READ_BUFFER_BYTES = 256 * 1024;
/** How long close() waits for a blocked read and the descriptor's close. */
const CLOSE_WAIT_MS = 500;

/**
 * The virtio-serial port inside a VM. Measured behaviour it is built for (see
 * shared/reference/qemu-guest/README.md): with no host attached, read() returns 0 at once, every
 * time, so a plain loop would spin — we close and reopen after `reopenDelayMs` instead; with a
 * host attached and idle, read() blocks (it runs on libuv's thread pool, never the event loop);
 * when the host leaves, a blocked read() returns 0. `net.Socket` rejects the char device, so
 * blocking fs.read/fs.write it is. A host is taken as connected once it has sent a byte (it
 * always starts with a sync); until then nothing is written, because a write to an unattached
 * port would block a pool thread indefinitely.
 */
export class VirtioDeviceChannel implements HostChannel {
  readonly description: string;
  private handle: FileHandle | undefined;
  private hostSeen = false;
  private closing = false;
  /** Set while paused: the read loop waits for it. */
  private resumed: { promise: Promise<void>; resolve: () => void } | undefined;
  private loop: Promise<void> | undefined;
  private writeChain: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly reopenDelayMs = 100,
  ) {
    this.description = `virtio-serial port ${path}`;
  }

  get connected(): boolean {
    return this.hostSeen && this.handle !== undefined;
  }

  async start(listener: ChannelListener): Promise<void> {
    // Fail fast on a wrong path: an operator should see it at start, not in a retry loop.
    this.handle = await open(this.path, 'r+');
    this.loop = this.readLoop(listener);
  }

  private async readLoop(listener: ChannelListener): Promise<void> {
    const buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    while (!this.closing) {
      if (this.resumed) {
        await this.resumed.promise;
        continue;
      }
      const handle = this.handle ?? (await this.reopen());
      if (!handle) {
        await sleep(this.reopenDelayMs);
        continue;
      }
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, 0, buf.length, null));
      } catch {
        n = 0;
      }
      if (n > 0) {
        if (!this.hostSeen) {
          this.hostSeen = true;
          listener.onConnect();
        }
        listener.onData(Buffer.from(buf.subarray(0, n)));
        continue;
      }
      // End of stream: no host, or the host just left.
      if (this.hostSeen) {
        this.hostSeen = false;
        listener.onDisconnect('host end of the virtio-serial port closed');
      }
      await this.closeHandle();
      await sleep(this.reopenDelayMs);
    }
  }

  pause(): void {
    if (!this.resumed) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.resumed = { promise, resolve };
    }
  }

  resume(): void {
    const gate = this.resumed;
    this.resumed = undefined;
    gate?.resolve();
  }

  private async reopen(): Promise<FileHandle | undefined> {
    try {
      this.handle = await open(this.path, 'r+');
      return this.handle;
    } catch {
      return undefined;
    }
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    // Let queued writes finish or fail before the descriptor goes away.
    await this.writeChain.catch(() => undefined);
    await handle?.close().catch(() => undefined);
  }

  write(frame: Uint8Array[]): Promise<void> {
    if (!this.connected) {
      return Promise.reject(new ChannelClosedError());
    }
    const parts = coalesceSmallFrame(frame);
    // One write at a time, in order: frames must not interleave and each blocking write holds
    // a pool thread.
    const next = this.writeChain.then(async () => {
      const handle = this.handle;
      if (!handle || !this.hostSeen) {
        throw new ChannelClosedError();
      }
      for (const part of parts) {
        let done = 0;
        while (done < part.length) {
          const { bytesWritten } = await handle.write(part, done, part.length - done, null);
          done += bytesWritten;
        }
      }
    });
    this.writeChain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.resume();
    // A read blocked in the kernel (an idle host) is not interrupted by close(), and closing the
    // handle waits for it: do not wait for either forever. Waiting was how SIGTERM never ended
    // an agent: its supervisor killed it after its grace (10 s in the QEMU guest, systemd 90 s).
    await Promise.race([
      Promise.all([this.closeHandle(), this.loop?.catch(() => undefined)]),
      sleep(CLOSE_WAIT_MS),
    ]);
  }
}
