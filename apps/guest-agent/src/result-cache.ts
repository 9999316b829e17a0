import type { AgentPayload } from '@lq/proto';

interface Entry {
  promise: Promise<AgentPayload>;
  bytes: number;
  done: boolean;
  expiresAt: number;
}

/**
 * Keeps results until the host acknowledges them (PROTOCOL.md §4): guest→host bytes are lost
 * when the host end drops, so a reply that was written may never have arrived. A request that
 * comes again with the same id attaches to the running work or gets the stored result; nothing
 * runs twice. Bounded by age and by total bytes (oldest finished results go first).
 */
export class ResultCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly retentionMs: number,
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get retainedBytes(): number {
    return this.bytes;
  }

  /** The running or retained result for this id, if any. */
  get(id: string): Promise<AgentPayload> | undefined {
    const entry = this.entries.get(id);
    if (!entry) {
      return undefined;
    }
    if (entry.done && entry.expiresAt <= this.now()) {
      this.remove(id);
      return undefined;
    }
    return entry.promise;
  }

  /** Tracks work for an id; once it settles its result is retained (errors are not). */
  track(id: string, work: Promise<AgentPayload>, sizeOf: (p: AgentPayload) => number): void {
    const entry: Entry = { promise: work, bytes: 0, done: false, expiresAt: Infinity };
    this.entries.set(id, entry);
    work.then(
      (payload) => {
        if (this.entries.get(id) !== entry) {
          return;
        }
        entry.done = true;
        entry.bytes = sizeOf(payload);
        entry.expiresAt = this.now() + this.retentionMs;
        this.bytes += entry.bytes;
        this.evict();
      },
      () => {
        if (this.entries.get(id) === entry) {
          this.entries.delete(id);
        }
      },
    );
  }

  /** Drops expired results (called on a timer: nothing else may come to trigger it). */
  sweep(): void {
    this.evict();
  }

  ack(ids: readonly string[]): void {
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry?.done) {
        this.remove(id);
      }
    }
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (entry) {
      this.bytes -= entry.bytes;
      this.entries.delete(id);
    }
  }

  private evict(): void {
    const now = this.now();
    // Map iteration is insertion order: oldest first.
    for (const [id, entry] of this.entries) {
      if (!entry.done) {
        continue;
      }
      if (entry.expiresAt <= now || this.bytes > this.maxBytes) {
        this.remove(id);
      } else if (this.bytes <= this.maxBytes) {
        break;
      }
    }
  }
}
