// The command history filtered by outcome (GET /api/audit/executions?outcome=…) is chosen from
// the outcomes, newest first, and must give exactly the page the intents' walk gives: intents
// newest first, each once, whatever order their outcomes were written in (a long command's
// outcome comes after many later intents), through every page of a cursor, with other filters,
// and for a filter nothing matches. Checked against the expected pages computed here from what
// was written, on real PostgreSQL.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { AuditRepository, type AuditFilter, type AuditRecord } from '@lq/audit';
import { createDataSource, runMigrationsLocked } from '../../src/database/data-source.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';

interface Written {
  requestId: string;
  actor: string;
  seq: number;
  status: string | undefined;
}

/** A small deterministic pseudo-random sequence (the same trail every run). */
function rng(seed: number) {
  let x = seed;
  return (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
}

describe('command history by outcome', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: AuditRepository;
  const intents: Written[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('lq_history_outcome');
    ds = createDataSource(db.url);
    await ds.initialize();
    await runMigrationsLocked(ds);
    repo = new AuditRepository(ds);
    const rnd = rng(7);
    const base = (actor: string): Omit<AuditRecord, 'kind' | 'requestId'> => ({
      actor,
      authMethod: 'api_key:test',
      sourceIp: '127.0.0.1',
      vmId: `vm-${rnd(3)}`,
      nodeId: 'node-1',
      projectId: 'demo',
      operation: 'execute',
      params: { command: 'true' },
    });
    // 400 executions: most end soon, some much later (outcomes out of order), some never;
    // 1 in 12 fails, 1 in 30 ends AGENT_TIMEOUT; pings in between.
    const open: Array<{ record: AuditRecord; status: string; due: number }> = [];
    let step = 0;
    const flush = async (all: boolean) => {
      for (let i = 0; i < open.length;) {
        if (all || open[i]!.due <= step) {
          const { record, status } = open.splice(i, 1)[0]!;
          await repo.append([{ ...record, kind: 'outcome', status }]);
        } else {
          i++;
        }
      }
    };
    for (let n = 0; n < 400; n++, step++) {
      const actor = `user-${rnd(2)}`;
      const record: AuditRecord = { ...base(actor), kind: 'intent', requestId: randomUUID() };
      await repo.append([record]);
      const seq = Number(
        (
          await ds.query<Array<{ seq: string }>>(
            `SELECT seq FROM audit_events WHERE request_id = $1 AND kind = 'intent'`,
            [record.requestId],
          )
        )[0]!.seq,
      );
      const r = rnd(60);
      const status = r < 5 ? 'failed' : r < 7 ? 'AGENT_TIMEOUT' : 'ok';
      const never = rnd(25) === 0;
      intents.push({ requestId: record.requestId, actor, seq, status: never ? undefined : status });
      if (!never) {
        open.push({ record, status, due: step + (rnd(10) === 0 ? 50 + rnd(150) : rnd(3)) });
      }
      if (n % 7 === 0) {
        await repo.append([
          { ...base(actor), operation: 'ping', kind: 'intent', requestId: randomUUID() },
        ]);
      }
      await flush(false);
    }
    // Those still open end now, except the last few (running).
    open.splice(open.length - 3, 3).forEach((o) => {
      intents.find((i) => i.requestId === o.record.requestId)!.status = undefined;
    });
    await flush(true);
  }, 120_000);

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  /** Every page of `f` through the cursor: request ids in order. */
  const allPages = async (f: Omit<AuditFilter, 'beforeSeq'>) => {
    const ids: string[] = [];
    let beforeSeq: number | undefined;
    for (let page = 0; page < 1000; page++) {
      const rows = await repo.executions({ ...f, beforeSeq });
      ids.push(...rows.map((r) => r.request_id));
      if (rows.length < f.limit) {
        return ids;
      }
      beforeSeq = rows[rows.length - 1]!.seq;
    }
    throw new Error('too many pages');
  };

  const expected = (match: (w: Written) => boolean) =>
    intents
      .filter(match)
      .sort((a, b) => b.seq - a.seq)
      .map((w) => w.requestId);

  it('should page failed executions newest intent first, each once, at any page size', async () => {
    const want = expected((w) => w.status === 'failed');
    expect(want.length).toBeGreaterThan(10);
    for (const limit of [1, 3, 7, 50]) {
      expect(await allPages({ outcome: 'failed', limit })).toEqual(want);
    }
  });

  it('should page every outcome but ok as an error, and ok ones, with an actor filter', async () => {
    expect(await allPages({ outcome: 'error', limit: 5 })).toEqual(
      expected((w) => w.status !== undefined && w.status !== 'ok'),
    );
    expect(await allPages({ outcome: 'ok', actor: 'user-1', limit: 40 })).toEqual(
      expected((w) => w.status === 'ok' && w.actor === 'user-1'),
    );
  });

  it('should answer an empty page for an outcome nothing has', async () => {
    expect(await repo.executions({ outcome: 'SIGNATURE_REFUSED', limit: 20 })).toEqual([]);
  });

  it('should give the same page as the walk of the intents without an outcome filter', async () => {
    const page = await repo.executions({ limit: 30 });
    expect(page.map((r) => r.request_id)).toEqual(expected(() => true).slice(0, 30));
  });

  it('should keep to a time window, its ends included, with and without other filters', async () => {
    // The window is a range of sequence numbers found on the time index (audit-filter.ts).
    const rows = await ds.query<Array<{ request_id: string; at: Date; actor: string }>>(
      `SELECT request_id, at, actor FROM audit_events
       WHERE kind = 'intent' AND operation = 'execute' ORDER BY seq DESC`,
    );
    const from = rows[300]!.at;
    const to = rows[100]!.at;
    const inWindow = (actor?: string) =>
      rows
        .filter((r) => r.at >= from && r.at <= to && (actor === undefined || r.actor === actor))
        .map((r) => r.request_id);
    expect(inWindow().length).toBeGreaterThanOrEqual(201);
    expect(await allPages({ from, to, limit: 40 })).toEqual(inWindow());
    expect(await allPages({ from, to, actor: 'user-1', limit: 25 })).toEqual(inWindow('user-1'));
    expect(await allPages({ from, limit: 50 })).toEqual(
      rows.filter((r) => r.at >= from).map((r) => r.request_id),
    );
    expect(await repo.executions({ from: new Date(Date.now() + 3600_000), limit: 10 })).toEqual([]);
    expect(await repo.executions({ to: new Date(0), limit: 10 })).toEqual([]);
  });
});
