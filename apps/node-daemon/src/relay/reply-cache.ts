import type { GuestResponse } from '@lq/proto';

interface Entry {
  result: GuestResponse['result'];
  bytes: number;
  expiresAt: number;
}

/**
 * The answers of retained operations (an execution's result) this daemon relayed, by VM and
 * request id, for a while (PROTOCOL.md §4). The daemon acknowledges a result to the agent as soon
 * as it arrives, so the agent forgets it; if the reply then never reached its control plane
 * (that replica died), the replica that adopts the execution asks again under the same id and
 * gets it from here instead of losing it. Bounded by age and by total bytes, oldest first.
 */
export class ReplyCache {
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

  get(vmId: string, requestId: string): GuestResponse['result'] | undefined {
    const key = `${vmId}\0${requestId}`;
    const e = this.entries.get(key);
    if (!e) {
      return undefined;
    }
    if (e.expiresAt <= this.now()) {
      this.remove(key);
      return undefined;
    }
    return e.result;
  }

  put(vmId: string, requestId: string, result: GuestResponse['result'], bytes: number): void {
    if (this.retentionMs === 0 || bytes > this.maxBytes) {
      return;
    }
    const key = `${vmId}\0${requestId}`;
    this.remove(key);
    this.entries.set(key, { result, bytes, expiresAt: this.now() + this.retentionMs });
    this.bytes += bytes;
    // Map order is insertion order: the first entries are the oldest.
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes && e.expiresAt > now) {
        break;
      }
      this.remove(k);
    }
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (e) {
      this.entries.delete(key);
      this.bytes -= e.bytes;
    }
  }
}
