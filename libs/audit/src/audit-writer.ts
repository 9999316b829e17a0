import type { AuditRecord } from './audit-record.js';
import type { AuditSpool } from './audit-spool.js';

export interface AuditWriterOptions {
  /** Rows per transaction. */
  maxBatch: number;
  /** A write that takes longer fails its intents (the operations are refused). */
  writeTimeoutMs: number;
  /** Outcome and other rows kept in memory for retry while the store is down. */
  maxPending: number;
  /** Between retries of rows that must not be lost. */
  retryDelayMs: number;
  /**
   * Where rows that must not be lost go while the store is down (fsync'd, replayed in order
   * first when it is back, and after a restart); without one they wait in memory.
   */
  spool?: AuditSpool;
}

export interface AuditLog {
  warn(message: string): void;
  error(message: string): void;
}

interface Pending {
  record: AuditRecord;
  /** Intents fail fast (the caller refuses the operation); the rest are retried. */
  mustRetry: boolean;
  /**
   * A row of its last batch was refused for its content: that batch is written again in halves
   * of this many rows (down to one), so the bad row is found in log2(batch) rounds.
   */
  batchLimit?: number;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * The store refused a row for what it holds (a value PostgreSQL cannot take, a constraint), not
 * because it is away: retrying cannot help. `append` throws it for a batch; the writer then
 * splits that batch until only the bad row fails.
 */
export class AuditRowRejected extends Error {
  constructor(
    message: string,
    /** The PostgreSQL error code (SQLSTATE). */
    readonly sqlState: string,
    /** A second outcome row for a request id: the database keeps the first (a bug upstream). */
    readonly duplicateOutcome = false,
  ) {
    super(message);
    this.name = 'AuditRowRejected';
  }
}

/**
 * The ordered writer: rows queue up and are appended in batches, one transaction at a time per
 * process (and under the chain lock across replicas), so the chain stays correct under any
 * concurrency while a burst costs one round trip per batch, not per row.
 *
 * An intent's promise settles when its row is committed or has failed; a failed intent is not
 * retried (its operation is refused). Outcomes, denials and the rest are kept and retried until
 * the store is back: in the spool when there is one (their promise settles once spooled), else
 * in memory, up to `maxPending` rows.
 *
 * A row the store refuses for its content (AuditRowRejected) fails alone: its batch is written
 * again in halves until the bad row is alone, which is refused (an intent's caller answers 400;
 * any other row is logged and counted, never retried), and every other row goes on.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private running = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private dropped = 0;
  /** Replay the spool row by row: a row of its last batch was refused for its content. */
  private spoolAlone = false;

  constructor(
    private readonly append: (records: AuditRecord[]) => Promise<void>,
    private readonly options: AuditWriterOptions,
    private readonly log: AuditLog,
  ) {
    // Rows a previous run spooled (it stopped or crashed while the store was down) go first.
    if (options.spool && !options.spool.empty) {
      this.log.warn(
        `audit: ${options.spool.pendingBytes} bytes of rows spooled in ${options.spool.dir}; replaying them`,
      );
      this.kick();
    }
  }

  /** Bytes of spooled rows not yet in the store. */
  get spooledBytes(): number {
    return this.options.spool?.pendingBytes ?? 0;
  }

  /** Appends an intent; rejects when it could not be committed in time. */
  intent(record: AuditRecord): Promise<void> {
    return this.enqueue(record, false);
  }

  /** Appends a row that must not be lost; resolves once committed (retrying meanwhile). */
  record(record: AuditRecord): Promise<void> {
    return this.enqueue(record, true);
  }

  get pending(): number {
    return this.queue.length;
  }

  get droppedRows(): number {
    return this.dropped;
  }

  /** Waits (up to `timeoutMs`) for queued rows to be written; then stops retrying. */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length > 0 || this.running) && Date.now() < deadline) {
      if (!this.running && this.retryTimer === undefined) {
        this.kick();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    // Rows that must not be lost outlive the process in the spool.
    this.spoolQueued();
    if (this.queue.length > 0) {
      this.log.error(`audit: ${this.queue.length} rows not written at shutdown`);
      for (const p of this.queue.splice(0)) {
        p.reject(new Error('audit writer closed'));
      }
    }
  }

  private enqueue(record: AuditRecord, mustRetry: boolean): Promise<void> {
    if (this.closed) {
      return Promise.reject(new Error('audit writer closed'));
    }
    if (mustRetry && this.retained() >= this.options.maxPending) {
      this.dropped++;
      this.log.error(
        `audit: ${this.retained()} rows waiting for the store; dropping ${record.kind} ${record.operation} ${record.requestId}`,
      );
      return Promise.reject(new Error('audit backlog full'));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ record, mustRetry, resolve, reject });
      if (this.retryTimer === undefined) {
        this.kick();
      }
    });
  }

  /** Queued rows that must not be lost (counted, not copied: this runs for every row). */
  private retained(): number {
    let n = 0;
    for (const p of this.queue) {
      if (p.mustRetry) {
        n++;
      }
    }
    return n;
  }

  private kick(): void {
    if (!this.running) {
      this.running = true;
      void this.drain();
    }
  }

  private async drain(): Promise<void> {
    const spool = this.options.spool;
    try {
      while ((this.queue.length > 0 || (spool && !spool.empty)) && !this.closed) {
        // Spooled rows are older than anything queued: they go first, in order.
        if (spool && !spool.empty) {
          if (!(await this.replay(spool))) {
            return;
          }
          continue;
        }
        const batch = this.queue.splice(0, this.queue[0]!.batchLimit ?? this.options.maxBatch);
        const work = this.append(batch.map((p) => p.record));
        try {
          await this.withTimeout(work);
          for (const p of batch) {
            p.resolve();
          }
        } catch (err) {
          if (err instanceof AuditRowRejected) {
            if (batch.length > 1) {
              // A row of these is bad: write them again in two halves, in the same order.
              const half = Math.ceil(batch.length / 2);
              batch.forEach((p, i) => {
                p.batchLimit = i < half ? half : batch.length - half;
              });
              this.queue.unshift(...batch);
            } else {
              this.refuse(batch[0]!, err);
            }
            continue;
          }
          const e = err instanceof Error ? err : new Error(String(err));
          // Fail the batch's intents and every waiting one now: the store is down or slow,
          // their callers answer 503 rather than wait for a retry.
          const refused = batch.filter((p) => !p.mustRetry);
          const waiting = this.queue.splice(0);
          for (const p of [...refused, ...waiting.filter((w) => !w.mustRetry)]) {
            p.reject(e);
          }
          this.queue = waiting.filter((p) => p.mustRetry);
          // A write that timed out may still commit: writing its rows again would record an
          // outcome twice. Its rows that must not be lost wait for the write's real end; if it
          // committed they are written, and so are the refused intents it held, which get an
          // outcome saying their operation was not sent (no intent is left without one).
          const committed = await work.then(
            () => true,
            () => false,
          );
          const keep = batch.filter((p) => p.mustRetry);
          if (committed) {
            for (const p of keep) {
              p.resolve();
            }
            this.queue.unshift(
              ...refused.map((p) => ({
                record: lateIntentOutcome(p.record),
                mustRetry: true,
                resolve: () => undefined,
                reject: () => undefined,
              })),
            );
            continue;
          }
          // Rows that must not be lost go back to the front (or to the spool).
          this.queue.unshift(...keep);
          this.failed(e);
          return;
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Writes the spool's next rows; false when the store failed (a retry is scheduled). A spooled
   * row the store refuses for its content (the copy of an outcome committed just before a crash)
   * is logged and passed over, alone, as in the queue.
   */
  private async replay(spool: AuditSpool): Promise<boolean> {
    const { records, next } = spool.peek(this.spoolAlone ? 1 : this.options.maxBatch);
    const work = this.append(records);
    try {
      await this.withTimeout(work);
    } catch (err) {
      if (err instanceof AuditRowRejected) {
        if (records.length > 1) {
          this.spoolAlone = true;
          return true;
        }
        const r = records[0]!;
        this.log.error(
          `audit: the store refused the spooled ${r.kind} ${r.operation} of request ${r.requestId} (${err.sqlState}: ${err.message})`,
        );
      } else if (!(await settled(work))) {
        this.failed(err);
        return false;
      }
    }
    spool.consume(next);
    if (spool.empty) {
      this.spoolAlone = false;
    }
    return true;
  }

  /** The store failed: queued rows that must not be lost are spooled; a retry is scheduled. */
  private failed(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    for (const p of this.queue.filter((q) => !q.mustRetry)) {
      p.reject(e);
    }
    this.queue = this.queue.filter((q) => q.mustRetry);
    this.spoolQueued();
    const spooled = this.options.spool?.pendingBytes ?? 0;
    if (this.queue.length > 0 || spooled > 0) {
      this.log.warn(
        `audit: write failed (${e.message}); ${this.queue.length} rows kept in memory, ${spooled} bytes spooled, retrying in ${this.options.retryDelayMs} ms`,
      );
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, this.options.retryDelayMs);
      this.retryTimer.unref();
    }
  }

  /** Moves the queued rows that must not be lost to the spool (fsync'd), if it has room. */
  private spoolQueued(): void {
    const spool = this.options.spool;
    const rows = this.queue.filter((p) => p.mustRetry);
    if (!spool || rows.length === 0) {
      return;
    }
    let ok: boolean;
    try {
      ok = spool.append(rows.map((p) => p.record));
    } catch (err) {
      this.log.error(`audit: spool ${spool.dir} not written: ${(err as Error).message}`);
      return;
    }
    if (!ok) {
      this.log.error(
        `audit: spool ${spool.dir} is full (${spool.maxBytes} bytes); ${rows.length} rows kept in memory`,
      );
      return;
    }
    this.queue = this.queue.filter((p) => !p.mustRetry);
    for (const p of rows) {
      p.resolve();
    }
  }

  /** A row the store refused for its content: it fails alone and is never retried. */
  private refuse(p: Pending, err: AuditRowRejected): void {
    const r = p.record;
    const what = `${r.kind} ${r.operation} of request ${r.requestId}`;
    if (err.duplicateOutcome) {
      // The schema keeps one outcome per request; a second is a bug upstream, not the caller's.
      this.log.error(`audit: a second outcome row for one request refused (a bug): ${what}`);
      p.resolve();
      return;
    }
    if (p.mustRetry) {
      this.dropped++;
    }
    this.log.error(`audit: the store refused the ${what} (${err.sqlState}: ${err.message})`);
    p.reject(err);
  }

  private withTimeout(work: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`audit store did not answer in ${this.options.writeTimeoutMs} ms`)),
        this.options.writeTimeoutMs,
      );
    });
    // The write may still land after a timeout: drain() waits for its end before going on.
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }
}

/** Whether a write committed (true) or failed (false), once it has ended. */
function settled(work: Promise<void>): Promise<boolean> {
  return work.then(
    () => true,
    () => false,
  );
}

/** The outcome of an intent that was committed after its caller was told it was not. */
export function lateIntentOutcome(intent: AuditRecord): AuditRecord {
  return {
    kind: 'outcome',
    actor: intent.actor,
    authMethod: intent.authMethod,
    sourceIp: intent.sourceIp,
    requestId: intent.requestId,
    operation: intent.operation,
    vmId: intent.vmId,
    nodeId: intent.nodeId,
    projectId: intent.projectId,
    status: 'AUDIT_UNAVAILABLE',
    error: 'the intent was written after its deadline; the operation was refused and not sent',
  };
}
