import type { Logger } from '../logger.js';
import { releaseCodePages } from './code-pages.js';

/** Work since the last reclaim that makes the next idle moment worth one. */
const WORTH_REQUESTS = 32;
const WORTH_BYTES = 1024 * 1024;
/** After a cold path (a host's sync) the wait is at most this: a connection's first idle moment. */
const COLD_IDLE_MS = 200;

/** Memory kept for reuse that a reclaim lets go of: a BufferPool's free buffers, read-ahead. */
export interface Drainable {
  drain(): void;
}

export interface ReclaimStats {
  reclaims: number;
  /** Collections made because memory.collect_after_output_bytes were dropped (busy or not). */
  bulkCollections: number;
  lastCodeBytes: number;
}

/** A full garbage collection where the runtime offers one (Bun.gc; Node.js with --expose-gc). */
function collectGarbage(): void {
  const runtime = globalThis as { Bun?: { gc(force: boolean): void }; gc?: () => void };
  if (runtime.Bun) {
    runtime.Bun.gc(true);
  } else {
    runtime.gc?.();
  }
}

/**
 * Gives memory back once the agent idles after work: `idleMs` after the last request in progress
 * ended (and only after enough work since the last time, so a host's keepalive pings do not
 * make it churn), it drops the pooled buffers, runs a full garbage collection when the
 * runtime offers one (Bun.gc; Node.js only with --expose-gc), and releases the executable's code
 * pages (code-pages.ts). Once after start-up too. A collection an idle process never triggers by
 * itself is what used to keep big outputs and transfers in memory for good.
 */
export class MemoryReclaimer {
  readonly stats: ReclaimStats = { reclaims: 0, bulkCollections: 0, lastCodeBytes: 0 };
  private inFlight = 0;
  private requests = 0;
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDelay = 0;
  /** Output dropped since the last collection (memory.collect_after_output_bytes). */
  private bulk = 0;
  private bulkPending = false;

  constructor(
    private readonly idleMs: number,
    /** Pools whose free buffers a reclaim lets go of (and other memory kept for reuse). */
    private readonly pools: readonly Drainable[],
    private readonly log: Logger,
    /**
     * memory.collect_after_output_bytes: collect as soon as this much command output has been
     * read and dropped; 0: only when idle.
     */
    private readonly bulkBytes = 0,
    /** Run at every reclaim too: the agent's other idle-time housekeeping (helper threads). */
    private readonly whenIdle?: () => void,
  ) {}

  /** Requests started and not yet ended. */
  get active(): number {
    return this.inFlight;
  }

  begin(): void {
    this.inFlight++;
    this.requests++;
    // An armed reclaim is left alone: it finds this request in progress and does nothing, and
    // the request's end arms it again. Clearing and re-creating a timer on every request cost
    // more than the rest of a ping's bookkeeping.
  }

  /**
   * A request ended (its reply handed to the channel); `bytes` it moved, roughly, and `dropped`
   * bytes it read and let go of (a command's output past its cap: all of it garbage at once).
   */
  end(bytes = 0, dropped = 0): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.bytes += bytes;
    this.bulk += dropped;
    if (this.bulkBytes > 0 && this.bulk >= this.bulkBytes && !this.bulkPending) {
      // Busy or not: a host that keeps the agent busy (a command's output polled every few ms,
      // the next phase of a job right after) would otherwise find it holding the garbage of
      // every big output until it idles. One collection, a pause of some ms, right after the
      // reply that made it worth it. (File transfers leave little garbage: their buffers are
      // pooled, and a collection per 64 MiB would slow them by a tenth.)
      this.bulkPending = true;
      setImmediate(() => {
        this.bulkPending = false;
        this.collect();
      });
    }
    if (this.inFlight === 0) {
      this.arm();
    }
  }

  /**
   * Something ran for the first time (a host's sync: AgentReady's facts, the codec, the first
   * replies): reclaim at the next idle moment whatever the amount of work.
   */
  coldPathRan(): void {
    this.requests = Math.max(this.requests, WORTH_REQUESTS);
    if (this.inFlight === 0) {
      this.arm(Math.min(this.idleMs, COLD_IDLE_MS));
    }
  }

  /**
   * Start-up is done: reclaim what it left (its garbage, most of the executable's code pages)
   * once the agent has idled a moment, not right away: a full collection takes tens of ms, and a
   * host that connects as the agent starts would wait that long for its first answer.
   */
  afterStartup(): void {
    if (this.idleMs > 0) {
      this.coldPathRan();
      return;
    }
    // Idle reclaims are off; the one after start-up still happens.
    setTimeout(() => void this.reclaim(), COLD_IDLE_MS).unref();
  }

  /**
   * The collection alone, after a burst of dropped output: not the pools (in use by whatever
   * runs) nor the code pages (the code in use would only be faulted back in); the idle reclaim
   * lets go of those.
   */
  private collect(): void {
    this.bulk = 0;
    this.stats.bulkCollections++;
    collectGarbage();
  }

  /** Right away (tests). */
  async reclaim(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.requests = 0;
    this.bytes = 0;
    this.bulk = 0;
    for (const pool of this.pools) {
      pool.drain();
    }
    collectGarbage();
    try {
      this.stats.lastCodeBytes = await releaseCodePages();
    } catch (err) {
      this.log.debug('could not release code pages', { error: (err as Error).message });
    }
    this.stats.reclaims++;
    this.whenIdle?.();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(delayMs = this.idleMs): void {
    if (this.idleMs === 0 || (this.requests < WORTH_REQUESTS && this.bytes < WORTH_BYTES)) {
      return;
    }
    if (this.timer !== undefined && this.timerDelay === delayMs) {
      // Still pending: push it back (one call, no new timer per request).
      this.timer.refresh();
      return;
    }
    clearTimeout(this.timer);
    this.timerDelay = delayMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.inFlight === 0) {
        void this.reclaim();
      }
    }, delayMs);
    this.timer.unref();
  }
}
