import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The operators' history (GET /api/executions, GET /api/runs): pages newest first by
 * (created_at, id), within a project, by actor, and the runs that targeted a VM.
 */
export class AddHistoryIndexes1764900000100 implements MigrationInterface {
  name = 'AddHistoryIndexes1764900000100';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX executions_created_idx ON executions (created_at DESC, id DESC)');
    await q.query(
      'CREATE INDEX executions_project_created_idx ON executions (project_id, created_at DESC, id DESC)',
    );
    await q.query(
      'CREATE INDEX executions_actor_created_idx ON executions (actor, created_at DESC, id DESC)',
    );
    await q.query('CREATE INDEX runs_created_idx ON runs (created_at DESC, id DESC)');
    await q.query('CREATE INDEX runs_actor_created_idx ON runs (actor, created_at DESC, id DESC)');
    await q.query('CREATE INDEX run_targets_vm_idx ON run_targets (vm_id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX run_targets_vm_idx');
    await q.query('DROP INDEX runs_actor_created_idx');
    await q.query('DROP INDEX runs_created_idx');
    await q.query('DROP INDEX executions_actor_created_idx');
    await q.query('DROP INDEX executions_project_created_idx');
    await q.query('DROP INDEX executions_created_idx');
  }
}
