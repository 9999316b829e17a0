import { create } from '@bufbuild/protobuf';
import { ExecOutputEventSchema, OutputStream, type ExecOutputEvent } from '@lq/proto';

export interface OutputStreamerOptions {
  /** Output is gathered this long before it is sent (fewer, larger events). */
  flushMs: number;
  /** Largest chunk in one event. */
  chunkMaxBytes: number;
  /** Sustained streaming rate per execution; past it, bytes are skipped and counted. */
  bytesPerSecond: number;
}

export const DEFAULT_STREAMER_OPTIONS: OutputStreamerOptions = {
  flushMs: 100,
  chunkMaxBytes: 64 * 1024,
  bytesPerSecond: 1024 * 1024,
};

interface Pending {
  parts: Uint8Array[];
  bytes: number;
  dropped: number;
}

/**
 * Turns a running execution's output into ExecOutputEvents: coalesced per flush interval, split
 * at chunkMaxBytes, numbered from 1 over both streams, and bounded in rate by a token bucket
 * (a runaway `yes` costs the channel at most bytesPerSecond; what is skipped is counted in the
 * next event's dropped_bytes).
 */
export class OutputStreamer {
  private seq = 0n;
  private timer: NodeJS.Timeout | undefined;
  private tokens: number;
  private refilledAt: number;
  private closed = false;
  private readonly pending: Record<'stdout' | 'stderr', Pending> = {
    stdout: { parts: [], bytes: 0, dropped: 0 },
    stderr: { parts: [], bytes: 0, dropped: 0 },
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

  push(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    if (this.closed || chunk.length === 0) {
      return;
    }
    const p = this.pending[stream];
    p.parts.push(chunk);
    p.bytes += chunk.length;
    if (p.bytes >= this.options.chunkMaxBytes) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.options.flushMs);
    }
  }

  /** Sends what is pending now (the final flush happens on close). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const t = this.now();
    this.tokens = Math.min(
      this.options.bytesPerSecond,
      this.tokens + ((t - this.refilledAt) / 1000) * this.options.bytesPerSecond,
    );
    this.refilledAt = t;
    for (const stream of ['stdout', 'stderr'] as const) {
      const p = this.pending[stream];
      if (p.bytes === 0) {
        continue;
      }
      const data = p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts);
      p.parts = [];
      p.bytes = 0;
      const allowed = Math.max(0, Math.min(data.length, Math.floor(this.tokens)));
      this.tokens -= allowed;
      // Keep the newest bytes when over the rate: they say where the command is now.
      const kept = data.subarray(data.length - allowed);
      p.dropped += data.length - allowed;
      for (let off = 0; off < kept.length; off += this.options.chunkMaxBytes) {
        this.send(stream, kept.subarray(off, off + this.options.chunkMaxBytes));
      }
    }
  }

  /** Final flush; nothing is sent after it. */
  close(): void {
    this.flush();
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.pending[stream].dropped > 0) {
        this.send(stream, new Uint8Array());
      }
    }
    this.closed = true;
  }

  private send(stream: 'stdout' | 'stderr', data: Uint8Array): void {
    const p = this.pending[stream];
    this.emit(
      create(ExecOutputEventSchema, {
        executionId: this.executionId,
        seq: ++this.seq,
        stream: stream === 'stdout' ? OutputStream.STDOUT : OutputStream.STDERR,
        data,
        droppedBytes: BigInt(p.dropped),
      }),
    );
    p.dropped = 0;
  }
}
