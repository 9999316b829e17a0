/**
 * Group commit for one kind of single-row statement: rows given while a batch is being written
 * go together in the next one (up to `maxBatch`), so a burst (a fleet run starting or ending a
 * thousand executions) costs a round trip per batch, not per row. A row given while nothing is
 * being written is written at once: no timer, no added wait when there is no burst.
 *
 * `write` answers one result per row, in order. A batch that fails for a row's content (a
 * constraint, a value PostgreSQL refuses: SQLSTATE class 22 or 23) is written again row by row,
 * so that row fails alone; any other failure (the database away) fails the whole batch at once,
 * each row's caller seeing the error its own statement would have had.
 */
export class StatementBatcher<T, R> {
  private queue: Array<{ row: T; resolve(result: R): void; reject(err: unknown): void }> = [];
  private writing = false;

  constructor(
    private readonly write: (rows: T[]) => Promise<R[]>,
    private readonly maxBatch: number,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new Error(`maxBatch must be a whole number ≥ 1 (got ${maxBatch})`);
    }
  }

  /** Resolves with the row's result once its batch is written. */
  push(row: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
      if (!this.writing) {
        void this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const results = await this.write(batch.map((b) => b.row));
          batch.forEach((b, i) => b.resolve(results[i]!));
        } catch (err) {
          if (batch.length === 1 || !rowContentError(err)) {
            for (const b of batch) {
              b.reject(err);
            }
            continue;
          }
          for (const b of batch) {
            try {
              b.resolve((await this.write([b.row]))[0]!);
            } catch (e) {
              b.reject(e);
            }
          }
        }
      }
    } finally {
      this.writing = false;
    }
  }
}

/** PostgreSQL refused a row for what it holds (data exception, integrity constraint). */
function rowContentError(err: unknown): boolean {
  const e = err as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  const code = typeof e?.code === 'string' ? e.code : e?.driverError?.code;
  return typeof code === 'string' && /^2[23]/.test(code);
}
