import { create } from '@bufbuild/protobuf';
import { ExecOutputEventSchema, OutputStream, type ExecOutputEvent } from '@lq/proto';

export interface OutputStreamerOptions {
  /** Output is gathered this long before it is sent (fewer, larger events). */
  flushMs: number;
  /** Largest chunk in one event. */
  chunkMaxBytes: number;
  /** Sustained streaming rate per execution; past it, the caller is told to read more slowly. */
  bytesPerSecond: number;
}

export const DEFAULT_STREAMER_OPTIONS: OutputStreamerOptions = {
  flushMs: 100,
  chunkMaxBytes: 64 * 1024,
  bytesPerSecond: 4 * 1024 * 1024,
};

interface Pending {
  parts: Uint8Array[];
  bytes: number;
}

/**
 * Turns a running execution's output into ExecOutputEvents: coalesced per flush interval, split
 * at chunkMaxBytes, numbered from 1 over both streams, every byte sent. The rate is bounded by a
 * token bucket that may go into debt: `push` answers how long the caller should stop reading the
 * command's pipes to pay it back, so a runaway `yes` is slowed to bytesPerSecond (its writes
 * block) instead of having its output skipped (PROTOCOL.md §6, 0.4.0).
 */
export class OutputStreamer {
  private seq = 0n;
  private timer: NodeJS.Timeout | undefined;
  private tokens: number;
  private refilledAt: number;
  private closed = false;
  private readonly pending: Record<'stdout' | 'stderr', Pending> = {
    stdout: { parts: [], bytes: 0 },
    stderr: { parts: [], bytes: 0 },
  };

  constructor(
    private readonly executionId: string,
    private readonly emit: (event: ExecOutputEvent) => void,
    private readonly options: OutputStreamerOptions = DEFAULT_STREAMER_OPTIONS,
    private readonly now: () => number = () => performance.now(),
  ) {
    // One second's worth to start with: a short command's whole output goes out at once.
    this.tokens = options.bytesPerSecond;
    this.refilledAt = now();
  }

  /**
   * Takes a chunk of output; answers how many milliseconds the caller should pause reading
   * (0: keep reading) so that the stream stays within bytesPerSecond.
   */
  push(stream: 'stdout' | 'stderr', chunk: Uint8Array): number {
    if (this.closed || chunk.length === 0) {
      return 0;
    }
    const p = this.pending[stream];
    p.parts.push(chunk);
    p.bytes += chunk.length;
    if (p.bytes >= this.options.chunkMaxBytes) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.options.flushMs);
    }
    this.refill();
    this.tokens -= chunk.length;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.options.bytesPerSecond) * 1000);
  }

  /** Sends what is pending now (the final flush happens on close). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = this.pending[stream];
      if (p.bytes === 0) {
        continue;
      }
      const data = p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts);
      p.parts = [];
      p.bytes = 0;
      for (let off = 0; off < data.length; off += this.options.chunkMaxBytes) {
        this.send(stream, data.subarray(off, off + this.options.chunkMaxBytes));
      }
    }
  }

  /** Final flush; nothing is sent after it. */
  close(): void {
    this.flush();
    this.closed = true;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(
      this.options.bytesPerSecond,
      this.tokens + ((t - this.refilledAt) / 1000) * this.options.bytesPerSecond,
    );
    this.refilledAt = t;
  }

  private send(stream: 'stdout' | 'stderr', data: Uint8Array): void {
    this.emit(
      create(ExecOutputEventSchema, {
        executionId: this.executionId,
        seq: ++this.seq,
        stream: stream === 'stdout' ? OutputStream.STDOUT : OutputStream.STDERR,
        data,
      }),
    );
  }
}
