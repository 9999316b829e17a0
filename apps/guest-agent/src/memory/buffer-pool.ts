/** A buffer lent by a BufferPool; release() gives it back (once; later calls do nothing). */
export interface PooledBuffer {
  /** `length` bytes: a view of the pooled buffer, or a buffer of its own when none was free. */
  readonly buf: Buffer;
  release(this: void): void;
}

/**
 * A few chunk-sized buffers reused across file reads. Without it every chunk is a fresh
 * allocation that lives until a garbage collection an idle agent may not run for a long time;
 * with it, a transfer of any size touches at most `keep` chunk buffers, and drain() lets them go
 * when the agent idles. Buffers are lent until release(): the reply that carries one must have
 * been written (the frame encoder splices the bytes in, it does not copy them).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private lent = 0;

  constructor(
    /** The size of every pooled buffer (files.chunk_max_bytes). */
    readonly size: number,
    /** Free buffers kept for reuse (memory.buffer_pool_size); 0 turns the pool off. */
    readonly keep: number,
  ) {}

  acquire(length: number): PooledBuffer {
    if (length > this.size || this.keep === 0) {
      return { buf: Buffer.allocUnsafe(length), release: () => undefined };
    }
    const whole = this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    this.lent++;
    let released = false;
    return {
      buf: whole.subarray(0, length),
      release: () => {
        if (released) {
          return;
        }
        released = true;
        this.lent--;
        if (this.free.length < this.keep) {
          this.free.push(whole);
        }
      },
    };
  }

  /** Buffers waiting in the pool. */
  get idle(): number {
    return this.free.length;
  }

  /**
   * Buffers lent and not yet released. A loan left to the garbage collector instead (a received
   * frame whose handler keeps views of its bytes: Agent) stays counted; the pool just makes a
   * new buffer when it has no free one.
   */
  get inUse(): number {
    return this.lent;
  }

  /** Lets go of every free buffer (lent ones come back later and are kept again). */
  drain(): void {
    this.free.length = 0;
  }
}
