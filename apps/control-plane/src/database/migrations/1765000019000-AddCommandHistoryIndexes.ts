import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '../concurrent-index.js';

/**
 * The command history (GET /api/audit/executions) by VM and by user at 10 M audit rows
 * (bench:audit): the general (vm_id, seq) and (actor, seq) indexes hold every kind of row, so a
 * page of executions fetched 2-3 rows per execution, and with a cursor or a second filter the
 * planner read a user's whole history into a bitmap (p95 of seconds). These hold only the
 * executions' intents, newest first by seq: a page is an index scan that stops after `limit`.
 * The statistics tell the planner that users and VMs go together (a team owns its machines), so
 * "this user on this VM" is not estimated as a handful of rows and read through both indexes.
 *
 * Built CONCURRENTLY, outside a transaction (createIndexConcurrently says why).
 */
export class AddCommandHistoryIndexes1765000019000 implements MigrationInterface {
  name = 'AddCommandHistoryIndexes1765000019000';
  // CREATE INDEX CONCURRENTLY cannot run in a transaction.
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    for (const [index, column] of [
      ['audit_executions_vm_idx', 'vm_id'],
      ['audit_executions_actor_idx', 'actor'],
    ] as const) {
      await createIndexConcurrently(
        q,
        index,
        `ON audit_events (${column}, seq) WHERE kind = 'intent' AND operation = 'execute'`,
      );
    }
    await q.query(
      'CREATE STATISTICS IF NOT EXISTS audit_events_actor_vm_stats (dependencies) ON actor, vm_id FROM audit_events',
    );
    // Statistics are empty until the table is analyzed (a sample: seconds at 10 M rows).
    await q.query('ANALYZE audit_events');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP STATISTICS IF EXISTS audit_events_actor_vm_stats');
    await q.query('DROP INDEX IF EXISTS audit_executions_actor_idx');
    await q.query('DROP INDEX IF EXISTS audit_executions_vm_idx');
  }
}
