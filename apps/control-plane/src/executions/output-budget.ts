import type { OutputChunk } from './executions.repository.js';

/**
 * What one execution's output may still take: at most `maxStored` bytes stored in all
 * (LQ_EXEC_OUTPUT_MAX_BYTES) and at most `maxBuffered` bytes waiting in memory for the database
 * (LQ_EXEC_OUTPUT_BUFFER_BYTES). A chunk past either is cut or left out, and the execution is
 * flagged: its stored output is not all the command wrote.
 */
export class OutputBudget {
  private stored = 0;
  private buffered = 0;
  /** Some output was not kept. */
  truncated = false;
  /** The flag has been written (set by the caller once it has). */
  flagged = false;

  constructor(
    private readonly maxStored: number,
    private readonly maxBuffered: number,
  ) {}

  /**
   * The chunk as it may be kept (cut at the bound), or undefined when none of it may. `waited`:
   * its reader made room first (mustWait), so only the stored bound cuts it (redaction may have
   * made it a little longer than the room made: the buffer takes the difference).
   */
  admit(c: OutputChunk, waited = false): OutputChunk | undefined {
    const left = this.maxStored - this.stored - this.buffered;
    const room = waited ? left : Math.min(left, this.maxBuffered - this.buffered);
    if (c.data.length > room) {
      this.truncated = true;
    }
    if (room <= 0 || c.data.length === 0) {
      return room <= 0 ? undefined : c;
    }
    const kept = c.data.length <= room ? c : { ...c, data: c.data.subarray(0, room) };
    this.buffered += kept.data.length;
    return kept;
  }

  /**
   * A chunk of `bytes` would be cut only because the buffer is full (the database has not taken
   * it yet), not by the stored bound: a reader that can wait for a flush should.
   */
  mustWait(bytes: number): boolean {
    return (
      this.buffered > 0 &&
      this.buffered + bytes > this.maxBuffered &&
      this.stored + this.buffered < this.maxStored
    );
  }

  /** Bytes admitted (stored, or waiting to be). */
  get admitted(): number {
    return this.stored + this.buffered;
  }

  /** Output bytes that arrived, as the agent sent them (before redaction changed any). */
  private received = 0;

  saw(bytes: number): void {
    this.received += bytes;
  }

  get receivedBytes(): number {
    return this.received;
  }

  /**
   * The command wrote `total` bytes: fewer received means chunks never arrived (NATS core drops
   * messages to a consumer that falls too far behind), so the stored output is flagged.
   */
  settle(total: number): void {
    if (total > this.received) {
      this.truncated = true;
    }
  }

  /**
   * An adopted execution: its first replica stored `bytes` already (they count against the
   * bound, and as received: what went missing while no replica listened is flagged by settle).
   */
  resumeFrom(bytes: number): void {
    this.stored += bytes;
    this.received += bytes;
  }

  /** Chunks taken by admit were stored. */
  wrote(chunks: OutputChunk[]): void {
    const n = chunks.reduce((sum, c) => sum + c.data.length, 0);
    this.buffered -= n;
    this.stored += n;
  }
}
