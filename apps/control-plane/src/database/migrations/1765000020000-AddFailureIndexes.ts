import type { MigrationInterface, QueryRunner } from 'typeorm';
import { createIndexConcurrently } from '../concurrent-index.js';

/**
 * "A user's executions that did not end ok" (GET /api/audit/executions?actor=…&outcome=error)
 * at 10 M audit rows (bench:audit): p50 1.2 s, p95 2.4 s. The failures index is by project; with
 * only a user (or a VM) given, the planner walked the user's whole history (every kind of row,
 * 400,000 at 10 M) to find its few failures, and for a user with none, read all of it to answer
 * nothing. These hold only the rows that did not end ok, by user and by VM, newest first by
 * seq: such a query reads the failures it returns, or one index page when there are none.
 *
 * Built CONCURRENTLY, outside a transaction (createIndexConcurrently says why).
 */
export class AddFailureIndexes1765000020000 implements MigrationInterface {
  name = 'AddFailureIndexes1765000020000';
  // CREATE INDEX CONCURRENTLY cannot run in a transaction.
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    for (const [index, column] of [
      ['audit_events_actor_failures_idx', 'actor'],
      ['audit_events_vm_failures_idx', 'vm_id'],
    ] as const) {
      await createIndexConcurrently(
        q,
        index,
        `ON audit_events (${column}, seq) WHERE status <> 'ok'`,
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX IF EXISTS audit_events_vm_failures_idx');
    await q.query('DROP INDEX IF EXISTS audit_events_actor_failures_idx');
  }
}
