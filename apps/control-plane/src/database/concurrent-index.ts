import type { QueryRunner } from 'typeorm';

/**
 * CREATE INDEX CONCURRENTLY `index` `definition` (e.g. `ON audit_events (actor, seq) WHERE …`),
 * for a migration with `transaction = false`: on a deployment with millions of audit rows a plain
 * CREATE INDEX holds off every audit write (so every guest operation answers 503) for the
 * minutes a build takes. A build interrupted earlier leaves an invalid index: it is dropped and
 * built again.
 */
export async function createIndexConcurrently(
  q: QueryRunner,
  index: string,
  definition: string,
): Promise<void> {
  const invalid = (await q.query(
    `SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE c.relname = $1 AND NOT i.indisvalid`,
    [index],
  )) as unknown[];
  if (invalid.length > 0) {
    await q.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
  }
  await q.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${index} ${definition}`);
}
