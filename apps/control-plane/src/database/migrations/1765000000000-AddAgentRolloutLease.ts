import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Agent rollouts survive the replica driving them (issue 19): the replica that drives a running
 * rollout holds it by `owner` until `lease_until`, renewing the lease as it goes; once a lease has
 * run out, another replica claims the rollout and resumes it from its per-VM steps.
 */
export class AddAgentRolloutLease1765000000000 implements MigrationInterface {
  name = 'AddAgentRolloutLease1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE agent_rollouts ADD COLUMN owner text');
    await q.query('ALTER TABLE agent_rollouts ADD COLUMN lease_until timestamptz');
    // Rollouts already running when this lands have no driver left: claimable at once.
    await q.query(`UPDATE agent_rollouts SET lease_until = now() WHERE status = 'running'`);
    await q.query(
      `CREATE INDEX agent_rollouts_lease_idx ON agent_rollouts (lease_until)
       WHERE status = 'running'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX agent_rollouts_lease_idx');
    await q.query('ALTER TABLE agent_rollouts DROP COLUMN lease_until');
    await q.query('ALTER TABLE agent_rollouts DROP COLUMN owner');
  }
}
