/** Reads `buf.length` bytes at `position` unless the file ends first; returns the bytes read. */
export type ReadAt = (fd: number, buf: Uint8Array, position: number) => number;

export interface ReadAheadOptions {
  /** Bytes read at once for small sequential reads (files.read_ahead_bytes); 0: off. */
  bytes: number;
  /** Bytes read ahead are served for this long at most (files.read_ahead_max_age_ms). */
  maxAgeMs: number;
}

/** A read at most this fraction of the read-ahead size is small enough to be served from it. */
const SMALL_READ_DIVISOR = 4;

/**
 * One open handle's read-ahead (PROTOCOL.md §6, file handles): a small read that starts where the
 * handle's last read ended is served from one larger read (`bytes` at once) made when the
 * buffer did not already hold the whole request. A host that reads a file 4 KiB at a time then
 * costs the agent one read(2) per 64 KiB instead of one per chunk (sixteen system calls, each
 * several µs in a VM, become one). Data served from the buffer is at most `maxAgeMs` old: a file
 * rewritten in place under a reader can be seen that much later than with a read per chunk (as
 * with any buffered reader; qemu-ga's stdio buffer has no such bound). Reads that are large,
 * not sequential, or past what the buffer holds go to the file, fresh; a short fresh read is
 * the end of the file, as without read-ahead. Synchronous only (the agent's local-file path):
 * no two reads of one handle interleave.
 */
export class ReadAhead {
  private buf: Buffer | undefined;
  /** The file offset of buf[0], the bytes it holds from there, and when they were read. */
  private start = 0;
  private held = 0;
  private readAt = 0;
  /** Where the last read ended: a read starting here is sequential. */
  private next = 0;

  constructor(
    private readonly opts: ReadAheadOptions,
    private readonly read: ReadAt,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Bytes held for reuse (0 once dropped). */
  get bufferedBytes(): number {
    return this.buf?.length ?? 0;
  }

  /**
   * Fills `into` (its whole length) with the file's bytes at `offset` and returns how many there
   * were: fewer than `into.length` only at the end of the file.
   */
  readInto(fd: number, into: Buffer, offset: number): number {
    const length = into.length;
    const sequential = offset === this.next;
    if (!sequential || this.opts.bytes === 0 || length * SMALL_READ_DIVISOR > this.opts.bytes) {
      const n = this.read(fd, into, offset);
      this.next = offset + n;
      return n;
    }
    const now = this.now();
    if (
      this.buf === undefined ||
      offset < this.start ||
      offset + length > this.start + this.held ||
      now - this.readAt > this.opts.maxAgeMs
    ) {
      this.buf ??= Buffer.allocUnsafeSlow(this.opts.bytes);
      this.held = this.read(fd, this.buf, offset);
      this.start = offset;
      this.readAt = now;
    }
    const from = offset - this.start;
    const n = Math.min(length, this.held - from);
    this.buf.copy(into, 0, from, from + n);
    this.next = offset + n;
    return n;
  }

  /** Lets go of the buffer (the handle closes, or the agent gives memory back when idle). */
  drop(): void {
    this.buf = undefined;
    this.held = 0;
  }
}
