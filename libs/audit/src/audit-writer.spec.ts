import { describe, expect, it } from '@jest/globals';
import { AuditRowRejected, AuditWriter } from './audit-writer.js';
import type { AuditRecord } from './audit-record.js';

const rec = (i: number, kind: AuditRecord['kind'] = 'intent'): AuditRecord => ({
  kind,
  actor: 'a',
  authMethod: 'jwt',
  sourceIp: '',
  requestId: `r${i}`,
  operation: 'execute',
});
const options = { maxBatch: 10, writeTimeoutMs: 200, maxPending: 5, retryDelayMs: 10 };
const quiet = { warn: () => undefined, error: () => undefined };

describe('AuditWriter', () => {
  it('should write concurrent rows in order, in batches, one batch at a time', async () => {
    const batches: string[][] = [];
    let inFlight = 0;
    const writer = new AuditWriter(
      async (rows) => {
        inFlight++;
        expect(inFlight).toBe(1);
        await new Promise((r) => setTimeout(r, 5));
        batches.push(rows.map((r) => r.requestId));
        inFlight--;
      },
      options,
      quiet,
    );
    await Promise.all(Array.from({ length: 25 }, (_, i) => writer.intent(rec(i))));
    expect(batches.flat()).toEqual(Array.from({ length: 25 }, (_, i) => `r${i}`));
    expect(batches.length).toBeLessThan(25);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(10);
  });

  it('should fail intents when the store fails and retry outcomes until it is back', async () => {
    let up = false;
    const written: string[] = [];
    const writer = new AuditWriter(
      async (rows) => {
        if (!up) {
          throw new Error('connection refused');
        }
        written.push(...rows.map((r) => r.requestId));
      },
      options,
      quiet,
    );
    const outcome = writer.record(rec(1, 'outcome'));
    await expect(writer.intent(rec(2))).rejects.toThrow('connection refused');
    up = true;
    await outcome;
    expect(written).toEqual(['r1']);
  });

  it('should fail an intent the store does not answer in time', async () => {
    const writer = new AuditWriter(() => new Promise(() => undefined), options, quiet);
    await expect(writer.intent(rec(1))).rejects.toThrow(/did not answer in 200 ms/);
  });

  it('should write an outcome once when a timed-out write commits late', async () => {
    // The write of the first batch outlives the timeout, then commits: retrying it would
    // record the outcome twice (issue 18 item 10: one request id had two `ok` outcomes).
    const written: string[] = [];
    let firstWrite: Promise<void> | undefined;
    const writer = new AuditWriter(
      (rows) => {
        const write = async () => {
          if (firstWrite === undefined) {
            await new Promise((r) => setTimeout(r, options.writeTimeoutMs * 2));
          }
          written.push(...rows.map((r) => `${r.kind}:${r.requestId}:${r.status ?? ''}`));
        };
        const w = write();
        firstWrite ??= w;
        return w;
      },
      options,
      quiet,
    );
    const outcome = writer.record(rec(1, 'outcome'));
    const intent = writer.intent(rec(2));
    await expect(intent).rejects.toThrow(/did not answer/);
    await outcome;
    await writer.close(1000);
    await firstWrite;
    // The waiting intent was refused before it was written.
    expect(written).toEqual(['outcome:r1:']);
  });

  it('should give an intent that committed after its deadline an outcome', async () => {
    const written: string[] = [];
    let calls = 0;
    const writer = new AuditWriter(
      async (rows) => {
        if (++calls === 1) {
          await new Promise((r) => setTimeout(r, options.writeTimeoutMs * 2));
        }
        written.push(...rows.map((r) => `${r.kind}:${r.requestId}:${r.status ?? ''}`));
      },
      options,
      quiet,
    );
    await expect(writer.intent(rec(1))).rejects.toThrow(/did not answer/);
    await writer.close(2000);
    // Refused to its caller (nothing sent), yet in the trail: never an intent without outcome.
    expect(written).toEqual(['intent:r1:', 'outcome:r1:AUDIT_UNAVAILABLE']);
  });

  it('should refuse rows past maxPending while the store is down', async () => {
    const writer = new AuditWriter(
      async () => {
        throw new Error('down');
      },
      options,
      quiet,
    );
    const kept = Array.from({ length: 5 }, (_, i) => writer.record(rec(i, 'outcome')));
    await new Promise((r) => setTimeout(r, 20));
    await expect(writer.record(rec(9, 'outcome'))).rejects.toThrow('backlog full');
    expect(writer.droppedRows).toBe(1);
    await writer.close(50);
    await Promise.allSettled(kept);
  });

  it('should fail a row the store refuses alone and write every other row', async () => {
    const written: string[] = [];
    const errors: string[] = [];
    const writer = new AuditWriter(
      async (rows) => {
        await new Promise((r) => setTimeout(r, 2));
        if (rows.some((r) => r.requestId === 'r3' || r.requestId === 'r6')) {
          throw new AuditRowRejected('invalid input syntax for type json', '22P02');
        }
        written.push(...rows.map((r) => r.requestId));
      },
      options,
      { warn: () => undefined, error: (m) => errors.push(m) },
    );
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        i === 6 ? writer.record(rec(i, 'denied')) : writer.intent(rec(i)),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(
      Array.from({ length: 12 }, (_, i) => (i === 3 || i === 6 ? 'rejected' : 'fulfilled')),
    );
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(AuditRowRejected);
    expect(written).toEqual(
      Array.from({ length: 12 }, (_, i) => `r${i}`).filter((r) => r !== 'r3' && r !== 'r6'),
    );
    // The refused denial is counted and logged, never retried (it would block the writer).
    expect(writer.droppedRows).toBe(1);
    expect(errors.join('\n')).toContain('denied execute of request r6');
    await writer.intent(rec(20));
    expect(written.at(-1)).toBe('r20');
  });

  it('should find one bad row of a full batch in halves, not row by row', async () => {
    let calls = 0;
    const writer = new AuditWriter(
      async (rows) => {
        calls++;
        if (rows.some((r) => r.requestId === 'r37')) {
          throw new AuditRowRejected('value out of range', '22003');
        }
      },
      { ...options, maxBatch: 64, maxPending: 1000 },
      quiet,
    );
    const results = await Promise.allSettled(
      Array.from({ length: 64 }, (_, i) => writer.intent(rec(i))),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    // The first batch may be the first row alone (written as it came); then 63 rows: at most
    // one failed write per halving and one good one beside it.
    expect(calls).toBeLessThanOrEqual(2 + 2 * Math.ceil(Math.log2(64)));
  });

  it('should log a second outcome for one request as a bug and go on', async () => {
    const errors: string[] = [];
    const written: string[] = [];
    const writer = new AuditWriter(
      async (rows) => {
        if (rows.some((r) => r.requestId === 'dup')) {
          throw new AuditRowRejected('duplicate key', '23505', true);
        }
        written.push(...rows.map((r) => r.requestId));
      },
      options,
      { warn: () => undefined, error: (m) => errors.push(m) },
    );
    await expect(writer.record({ ...rec(1, 'outcome'), requestId: 'dup' })).resolves.toBe(
      undefined,
    );
    expect(errors.join('\n')).toMatch(/second outcome row .* \(a bug\)/);
    await writer.record(rec(2, 'outcome'));
    expect(written).toEqual(['r2']);
    expect(writer.droppedRows).toBe(0);
  });
});
