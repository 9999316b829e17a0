// The ordered audit writer against real PostgreSQL (issue 18 items 5 and 10): a row the store
// refuses fails alone and every other append goes on; one outcome per request id is enforced
// by the schema, and a second one is a logged bug, not a stuck writer.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import {
  AuditErrorCode,
  AuditRepository,
  AuditRowRejected,
  AuditService,
  AuditWriter,
  type AuditRecord,
} from '@lq/audit';
import {
  MIGRATIONS,
  createDataSource,
  runMigrationsLocked,
} from '../../src/database/data-source.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';

const record = (extra: Partial<AuditRecord> = {}): AuditRecord => ({
  kind: 'intent',
  requestId: randomUUID(),
  actor: 'op',
  authMethod: 'api_key:test',
  sourceIp: '127.0.0.1',
  vmId: 'vm-1',
  nodeId: 'node-1',
  projectId: 'demo',
  operation: 'execute',
  params: {},
  ...extra,
});

describe('audit writer on PostgreSQL', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: AuditRepository;
  let writer: AuditWriter;
  let service: AuditService;
  const errors: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('lq_audit_writer');
    ds = createDataSource(db.url);
    await ds.initialize();
    await runMigrationsLocked(ds);
    repo = new AuditRepository(ds);
    writer = new AuditWriter(
      (rows) => repo.append(rows),
      { maxBatch: 50, writeTimeoutMs: 10_000, maxPending: 1000, retryDelayMs: 100 },
      { warn: () => undefined, error: (m) => errors.push(m) },
    );
    service = new AuditService(repo, writer, 10_000);
  });

  afterAll(async () => {
    await writer?.close(5000);
    await ds?.destroy();
    await db?.drop();
  });

  const count = async (where = 'TRUE') =>
    (
      await ds.query<Array<{ n: number }>>(
        `SELECT count(*)::int AS n FROM audit_events WHERE ${where}`,
      )
    )[0]!.n;

  it('should fail a row PostgreSQL refuses alone, in a batch with others, and go on', async () => {
    const before = await count();
    // exit_code is an integer column: PostgreSQL refuses 2^40 (22003), whatever the code does.
    const poison = record({ kind: 'outcome', status: 'ok', exitCode: 2 ** 40 });
    const others = Array.from({ length: 30 }, () => record());
    const results = await Promise.allSettled([
      ...others.slice(0, 15).map((r) => writer.intent(r)),
      writer.record(poison),
      ...others.slice(15).map((r) => writer.intent(r)),
    ]);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    const refused = results[15] as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(AuditRowRejected);
    expect((refused.reason as AuditRowRejected).sqlState).toBe('22003');
    expect(await count()).toBe(before + 30);
    expect(errors.join('\n')).toContain(poison.requestId);

    // The next 100 operations are written, none held up behind the refused row.
    await Promise.all(Array.from({ length: 100 }, () => service.intent(record())));
    expect(await count()).toBe(before + 130);
    expect(writer.pending).toBe(0);
    expect((await repo.verify()).ok).toBe(true);
  });

  it('should refuse an intent PostgreSQL could not store with INVALID_RECORD, naming the field', async () => {
    for (const params of [
      { command: 'echo \ud800' },
      { env: { 'A\u0000': '[redacted]' } },
      { argv: ['x', 'tail \udc00'] },
    ]) {
      await expect(service.intent(record({ params }))).rejects.toMatchObject({
        code: AuditErrorCode.INVALID_RECORD,
        message: expect.stringMatching(/^params\.(command|env|argv)/),
      });
    }
    await expect(service.intent(record())).resolves.toBeUndefined();
  });

  it('should keep rows that must be written (denials, failed sign-ins) whatever text they hold', async () => {
    const before = await count();
    const emojiCut = `${'x'.repeat(4095)}\ud83d\ude00`; // error is cut at 4096: half a pair
    await service.record(
      record({
        kind: 'denied',
        status: 'PERMISSION_DENIED',
        params: { '\ud800key': 'v\u0000', path: '/tmp/\udfff' },
        error: emojiCut,
      }),
    );
    await service.record(
      record({
        kind: 'auth_failed',
        actor: 'bad\ud800name',
        requestId: '',
        status: 'UNAUTHENTICATED',
      }),
    );
    expect(await count()).toBe(before + 2);
    const [row] = await ds.query<Array<{ params: Record<string, string>; error: string }>>(
      `SELECT params, error FROM audit_events WHERE kind = 'denied' ORDER BY seq DESC LIMIT 1`,
    );
    expect(row!.params).toEqual({ '\uFFFDkey': 'v\uFFFD', path: '/tmp/\uFFFD' });
    expect(row!.error.endsWith('\uFFFD')).toBe(true);
    expect((await repo.verify()).ok).toBe(true);
  });

  it('should refuse a second outcome row for one request id in the database itself', async () => {
    const requestId = randomUUID();
    await writer.record(record({ requestId, kind: 'outcome', status: 'ok' }));
    // Straight into the table, bypassing every check of the code: the index refuses it.
    await expect(
      ds.query(
        `INSERT INTO audit_events (seq, at, kind, request_id, actor, auth_method, source_ip,
           operation, params, prev_hash, hash)
         SELECT max(seq) + 1, now(), 'outcome', $1, 'x', 'x', '', 'execute', '{}', '\\x00', '\\x00'
         FROM audit_events`,
        [requestId],
      ),
    ).rejects.toMatchObject({ code: '23505', constraint: 'audit_events_one_outcome_idx' });
    // Other kinds of rows of the same request are not limited.
    await writer.record(record({ requestId, kind: 'denied', status: 'PERMISSION_DENIED' }));

    // Through the writer: logged as a bug, the caller is not failed, the writer goes on.
    const before = await count(`kind = 'outcome'`);
    const second = record({ requestId, kind: 'outcome', status: 'ok' });
    const after = Array.from({ length: 10 }, () => record({ kind: 'outcome', status: 'ok' }));
    await Promise.all([writer.record(second), ...after.map((r) => writer.record(r))]);
    expect(await count(`kind = 'outcome'`)).toBe(before + 10);
    expect(await count(`kind = 'outcome' AND request_id = '${requestId}'`)).toBe(1);
    expect(errors.join('\n')).toMatch(/second outcome row for one request refused \(a bug\)/);
    expect((await repo.verify()).ok).toBe(true);
  });

  it('should migrate a trail that already holds duplicate outcomes, and roll back', async () => {
    const mine = MIGRATIONS.findIndex((m) => m.name === 'AuditOneOutcomePerRequest1764897318000');
    expect(mine).toBeGreaterThan(0);
    for (let i = MIGRATIONS.length - 1; i >= mine; i--) {
      await ds.undoLastMigration({ transaction: 'each' });
    }
    expect(
      await ds.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'audit_events_one_outcome_idx'`),
    ).toEqual([]);
    const legacy = randomUUID();
    await writer.record(record({ requestId: legacy, kind: 'outcome', status: 'ok' }));
    await writer.record(record({ requestId: legacy, kind: 'outcome', status: 'ok' }));
    const [{ last }] = await ds.query<[{ last: string }]>(
      'SELECT max(seq)::text AS last FROM audit_events',
    );
    await runMigrationsLocked(ds);
    const [index] = await ds.query<Array<{ def: string }>>(
      `SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'audit_events_one_outcome_idx'`,
    );
    expect(index!.def).toContain(`seq > ${last}`);
    // Rows after the migration are held to one outcome per request.
    const fresh = randomUUID();
    await writer.record(record({ requestId: fresh, kind: 'outcome', status: 'ok' }));
    await writer.record(record({ requestId: fresh, kind: 'outcome', status: 'ok' }));
    expect(await count(`request_id = '${fresh}'`)).toBe(1);
    expect((await repo.verify()).ok).toBe(true);
  });

  it('should go on when the server ends the connection kept between appends', async () => {
    await writer.intent(record());
    // The connection the repository keeps after an append (checked out of the pool, idle) is
    // ended by the server, with every other but this query's, as a restart would end them.
    const ended = await ds.query<Array<{ pid: number }>>(
      `SELECT pid FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    expect(ended.length).toBeGreaterThan(0);
    await ds.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [
      ended.map((r) => r.pid),
    ]);
    // The writer goes on with another connection (once the ended one's client has learnt that
    // it ended; an append that raced that news fails as the store being away would).
    let written = false;
    for (let i = 0; i < 50 && !written; i++) {
      written = await writer.intent(record()).then(
        () => true,
        () => false,
      );
      if (!written) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    expect(written).toBe(true);
    // A read may also meet a pooled connection whose end its client has not learnt yet (under
    // load, seen once): such a query fails once per ended connection, then the pool has new ones.
    let verified: Awaited<ReturnType<typeof repo.verify>> | undefined;
    for (let i = 0; i < 50 && !verified; i++) {
      verified = await repo.verify().catch((err: Error) => {
        if (!/terminating connection|Connection terminated/.test(err.message)) {
          throw err;
        }
        return undefined;
      });
    }
    expect(verified?.ok).toBe(true);
  });
});
