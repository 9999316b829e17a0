import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Exactly one outcome per intent, enforced by the schema (issue 18): a unique index on the
 * outcome rows' request id, so a second outcome for one request is refused by the database
 * whichever code path (or replica) tries to write it; the audit writer logs it as the bug it is.
 *
 * Audit rows cannot be deleted, and trails written before this index may already hold such
 * duplicates (a fleet run's retried start wrote two): then the index covers only the rows after
 * the last of them, and the migration says so.
 */
export class AuditOneOutcomePerRequest1764897318000 implements MigrationInterface {
  name = 'AuditOneOutcomePerRequest1764897318000';

  async up(q: QueryRunner): Promise<void> {
    const rows = (await q.query(`
      SELECT max(seq)::text AS last, count(*)::int AS requests FROM (
        SELECT max(seq) AS seq FROM audit_events WHERE kind = 'outcome'
        GROUP BY request_id HAVING count(*) > 1) d`)) as Array<{
      last: string | null;
      requests: number;
    }>;
    const last = rows[0]?.last;
    let since = '';
    if (last !== null && last !== undefined) {
      // A bigint literal from the database itself: no caller text reaches this statement.
      if (!/^\d+$/.test(last)) {
        throw new Error(`unexpected sequence number ${last}`);
      }
      since = ` AND seq > ${last}`;
      console.warn(
        `audit: ${rows[0]!.requests} requests already have more than one outcome row (the last at seq ${last}); one outcome per request is enforced from seq ${Number(last) + 1} on`,
      );
    }
    await q.query(`
      CREATE UNIQUE INDEX audit_events_one_outcome_idx ON audit_events (request_id)
        WHERE kind = 'outcome'${since}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS audit_events_one_outcome_idx');
  }
}
