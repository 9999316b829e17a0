// The audit chain with several writers on one database (control-plane replicas): each keeps the
// head it last saw and appends in one statement; a stale head must never fork the chain or lose
// a row. Real PostgreSQL, migrations as in production.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import { AuditRepository, type AuditRecord } from '@lq/audit';
import { createDataSource, runMigrationsLocked } from '../../src/database/data-source.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';

const record = (i: number, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  kind: 'intent',
  requestId: randomUUID(),
  actor: `user-${i % 3}`,
  authMethod: 'api_key:test',
  sourceIp: '127.0.0.1',
  vmId: `vm-${i % 5}`,
  nodeId: 'node-1',
  projectId: 'demo',
  operation: 'execute',
  params: { i },
  ...extra,
});

describe('audit chain with several writers', () => {
  let db: TestDatabase;
  const sources: DataSource[] = [];
  let repos: AuditRepository[];

  beforeAll(async () => {
    db = await createTestDatabase('lq_audit_chain');
    for (let i = 0; i < 3; i++) {
      const ds = createDataSource(db.url);
      await ds.initialize();
      sources.push(ds);
    }
    await runMigrationsLocked(sources[0]!);
    repos = sources.map((ds) => new AuditRepository(ds));
  });

  afterAll(async () => {
    await Promise.all(sources.map((ds) => ds.destroy()));
    await db?.drop();
  });

  it('a writer whose head went stale appends after the other writer, not beside it', async () => {
    const [a, b] = repos as [AuditRepository, AuditRepository];
    await a.append([record(1)]);
    await b.append([record(2), record(3)]);
    // a still holds seq 1 as its head: its next rows must land after b's.
    await a.append([record(4)]);
    await b.append([record(5)]);
    const report = await a.verify();
    expect(report).toMatchObject({ ok: true, rows: 5, last_seq: 5 });
    const events = await a.events({ limit: 10 });
    expect(events.map((e) => (e.params as { i: number }).i)).toEqual([5, 4, 3, 2, 1]);
  });

  it('three writers appending at once leave one unbroken chain with every row', async () => {
    const before = (await repos[0]!.verify()).rows;
    let n = 0;
    const writes = repos.flatMap((repo, w) =>
      Array.from({ length: 60 }, (_, j) => {
        const batch = Array.from({ length: 1 + ((w + j) % 3) }, () => record(n++));
        return repo.append(batch);
      }),
    );
    await Promise.all(writes);
    const report = await repos[1]!.verify();
    expect(report.ok).toBe(true);
    expect(report.rows).toBe(before + n);
    expect(report.last_seq).toBe(before + n);
    const times = await sources[0]!.query<Array<{ bad: number }>>(
      `SELECT count(*)::int AS bad FROM (
         SELECT at < lag(at) OVER (ORDER BY seq) AS back FROM audit_events) t WHERE back`,
    );
    expect(times[0]!.bad).toBe(0);
  });

  it('stores params, errors and output with quotes, dollars and backslashes as given', async () => {
    const tricky = `it's $1 $& $' \\x00 \\\\ "q" ${'é'}`;
    const requestId = randomUUID();
    const stdout = Buffer.from(tricky);
    const stderr = Buffer.from([0, 1, 2, 255]);
    const digest = (b: Buffer) => ({
      sha256: createHash('sha256').update(b).digest('hex'),
      bytes: b.length,
    });
    await repos[2]!.append([
      record(0, {
        requestId,
        kind: 'outcome',
        params: { text: tricky },
        status: 'ok',
        error: tricky,
        stdout: digest(stdout),
        stderr: digest(stderr),
        output: {
          stdout,
          stderr,
          stdoutTruncated: false,
          stderrTruncated: true,
        },
      }),
    ]);
    const rows = await sources[0]!.query<
      Array<{ params: { text: string }; error: string; stdout: Buffer; stderr: Buffer }>
    >(
      `SELECT e.params, e.error, o.stdout, o.stderr FROM audit_events e
       JOIN audit_outputs o USING (request_id) WHERE e.request_id = $1`,
      [requestId],
    );
    expect(rows[0]!.params.text).toBe(tricky);
    expect(rows[0]!.error).toBe(tricky);
    expect(rows[0]!.stdout.toString()).toBe(tricky);
    expect([...rows[0]!.stderr]).toEqual([0, 1, 2, 255]);
    const report = await repos[0]!.verify();
    expect(report.ok).toBe(true);
    expect(report.output_mismatches ?? []).toEqual([]);
  });
});
