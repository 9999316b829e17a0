import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fleet runs (one command over many VMs with a concurrency and an error budget) and VM labels
 * to target them by. Each VM of a run has a target row; the ones that ran point at their
 * execution.
 */
export class CreateRuns1764464400000 implements MigrationInterface {
  name = 'CreateRuns1764464400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'::jsonb`);
    await q.query('CREATE INDEX vms_labels_idx ON vms USING gin (labels)');
    await q.query(`
      CREATE TABLE runs (
        id uuid PRIMARY KEY,
        actor text NOT NULL,
        target jsonb NOT NULL,
        request jsonb NOT NULL,
        max_concurrency integer NOT NULL,
        max_errors integer,
        status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'stopped',
          'cancelled')),
        created_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE run_targets (
        run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        vm_id text NOT NULL,
        state text NOT NULL CHECK (state IN ('queued', 'denied', 'skipped', 'started', 'failed_to_start')),
        execution_id uuid,
        error text,
        PRIMARY KEY (run_id, vm_id)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE run_targets');
    await q.query('DROP TABLE runs');
    await q.query('DROP INDEX vms_labels_idx');
    await q.query('ALTER TABLE vms DROP COLUMN labels');
  }
}
