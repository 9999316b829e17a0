import type { AgentMessage } from '@lq/proto';
import { Deadlines, type Deadline } from './deadlines.js';

/** One request written (or waiting to be written) to the agent channel; expire() at its timeout. */
export interface PendingRequest extends Deadline {
  id: string;
  promise: Promise<AgentMessage>;
  operation: string;
  frame: Uint8Array[];
  resolve(message: AgentMessage): void;
  reject(err: Error): void;
  /** The agent retains this result until it is acknowledged (ResultAck). */
  ack: boolean;
  /** performance.now() when first written to the channel (undefined: not yet). */
  sentAt?: number;
}

/** The requests of one AgentClient awaiting their replies, by message id. */
export class PendingRequests {
  private readonly byId = new Map<string, PendingRequest>();
  private readonly deadlines = new Deadlines();

  get size(): number {
    return this.byId.size;
  }

  get(id: string): PendingRequest | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /** Adds a request; its expire() is called after timeoutMs unless it is taken first. */
  add(entry: PendingRequest, timeoutMs: number): void {
    this.byId.set(entry.id, entry);
    this.deadlines.add(entry, timeoutMs);
  }

  /** Removes the request answered by `id` and stops its deadline; undefined: not ours. */
  take(id: string): PendingRequest | undefined {
    const entry = this.byId.get(id);
    if (entry) {
      this.byId.delete(id);
      this.deadlines.remove(entry);
    }
    return entry;
  }

  /** Removes `entry` if it is still the one waiting under its id (a retry may have replaced it). */
  drop(entry: PendingRequest): boolean {
    this.deadlines.remove(entry);
    if (this.byId.get(entry.id) !== entry) {
      return false;
    }
    this.byId.delete(entry.id);
    return true;
  }

  /** Fails every request, or with `sentBefore` those written to the channel before it. */
  fail(err: Error, sentBefore?: number): void {
    for (const entry of [...this.byId.values()]) {
      if (sentBefore === undefined || (entry.sentAt !== undefined && entry.sentAt < sentBefore)) {
        this.take(entry.id);
        entry.reject(err);
      }
    }
  }

  values(): IterableIterator<PendingRequest> {
    return this.byId.values();
  }

  /** True if a request written to the channel has waited `ms` or longer at `now`. */
  waitingSince(now: number, ms: number): boolean {
    for (const e of this.byId.values()) {
      if (e.sentAt !== undefined && now - e.sentAt >= ms) {
        return true;
      }
    }
    return false;
  }
}

/**
 * Batches the ids of retained results (PROTOCOL.md §4) into one ResultAck: up to `maxIds` at a
 * time, or after `delayMs`. `send` answers false when there is no channel; the ids then wait.
 */
export class AckBatcher {
  private ids: string[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (ids: string[]) => boolean,
    private readonly maxIds = 256,
    private readonly delayMs = 50,
  ) {}

  queue(id: string): void {
    this.ids.push(id);
    if (this.ids.length >= this.maxIds) {
      this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.delayMs);
      this.timer.unref();
    }
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.ids.length === 0) {
      return;
    }
    const ids = this.ids;
    if (this.send(ids)) {
      this.ids = [];
    }
  }

  /** Sends what is queued (if it can) and stops the timer. */
  close(): void {
    this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
