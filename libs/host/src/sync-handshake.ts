import { randomBytes } from 'node:crypto';

/**
 * The nonce handshake of PROTOCOL.md §5: each attempt has a fresh random nonce; frames are
 * ignored until the reply that carries it; unanswered attempts are retried with a doubling wait
 * (from `initialMs` up to `maxMs`) until the agent answers.
 */
export class SyncHandshake {
  private nonce: bigint | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;

  constructor(
    private readonly timing: { initialMs: number; maxMs: number },
    /** Called when an attempt went unanswered: send the next one. */
    private readonly retry: () => void,
  ) {}

  /** Starts over from the shortest wait (a new connection, or a resync of a ready one). */
  reset(): void {
    this.attempt = 0;
  }

  /** The nonce of a new attempt; its retry is armed. */
  next(): bigint {
    const nonce = randomBytes(8).readBigUInt64BE();
    this.nonce = nonce;
    const wait = Math.min(this.timing.initialMs * 2 ** this.attempt, this.timing.maxMs);
    this.attempt++;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.retry(), wait);
    return nonce;
  }

  /** True if `nonce` answers the attempt under way, which then ends; false: a stale reply. */
  answer(nonce: bigint): boolean {
    if (nonce !== this.nonce) {
      return false;
    }
    this.stop();
    this.nonce = undefined;
    this.attempt = 0;
    return true;
  }

  /** Stops retrying (the connection closed). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
