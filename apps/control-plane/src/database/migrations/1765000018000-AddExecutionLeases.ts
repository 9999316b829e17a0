import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Owners and leases of executions and runs (issue 18 item 8): the replica driving one renews its
 * lease; when a replica dies its lease runs out and another takes the row over (one winner: an
 * UPDATE … WHERE the lease expired RETURNING) and finishes it with the agent's real result.
 *
 * `intent` is what an adopter needs to act under the execution's audit intent: the intent row's
 * actor fields and its signed authorization (never the request's secrets). A run keeps its
 * caller (principal, audit request id, source address) and its input without stdin or env values
 * (`input` is NULL when it had them: its VMs not yet started cannot be started by an adopter).
 * Rows written before this migration have no lease: only the sweep ends them, as before.
 */
export class AddExecutionLeases1765000018000 implements MigrationInterface {
  name = 'AddExecutionLeases1765000018000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executions
      ADD COLUMN owner text,
      ADD COLUMN lease_until timestamptz,
      ADD COLUMN intent jsonb`);
    await q.query(`ALTER TABLE runs
      ADD COLUMN owner text,
      ADD COLUMN lease_until timestamptz,
      ADD COLUMN caller jsonb,
      ADD COLUMN input jsonb`);
    await q.query(`CREATE INDEX executions_lease_idx ON executions (lease_until)
      WHERE status IN ('pending', 'running') AND lease_until IS NOT NULL`);
    await q.query(`CREATE INDEX runs_lease_idx ON runs (lease_until)
      WHERE status = 'running' AND lease_until IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX runs_lease_idx');
    await q.query('DROP INDEX executions_lease_idx');
    await q.query(`ALTER TABLE runs
      DROP COLUMN input, DROP COLUMN caller, DROP COLUMN lease_until, DROP COLUMN owner`);
    await q.query(`ALTER TABLE executions
      DROP COLUMN intent, DROP COLUMN lease_until, DROP COLUMN owner`);
  }
}
