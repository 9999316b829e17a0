import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Agent lifecycle (issue 19): each VM's agent build target and how its last self-update ended
 * (from AgentReady), and fleet rollouts of an agent release with a step per VM.
 */
export class AddAgentLifecycle1764907000000 implements MigrationInterface {
  name = 'AddAgentLifecycle1764907000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN agent_target text NOT NULL DEFAULT ''`);
    await q.query('ALTER TABLE vms ADD COLUMN agent_last_update jsonb');
    await q.query('CREATE INDEX vms_agent_version_idx ON vms (agent_version)');
    await q.query(`
      CREATE TABLE agent_rollouts (
        id uuid PRIMARY KEY,
        actor text NOT NULL,
        version text NOT NULL,
        target jsonb NOT NULL,
        canary integer NOT NULL,
        max_concurrency integer NOT NULL,
        max_errors integer NOT NULL,
        allow_downgrade boolean NOT NULL DEFAULT false,
        status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'stopped')),
        errors integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE agent_rollout_vms (
        rollout_id uuid NOT NULL REFERENCES agent_rollouts (id) ON DELETE CASCADE,
        vm_id text NOT NULL,
        seq integer NOT NULL,
        canary boolean NOT NULL,
        state text NOT NULL CHECK (state IN ('queued', 'denied', 'skipped', 'sent', 'verified',
          'restarted', 'ready', 'rolled_back', 'failed')),
        from_version text,
        to_version text,
        error text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (rollout_id, vm_id)
      )`);
    await q.query('CREATE INDEX agent_rollouts_created_idx ON agent_rollouts (created_at DESC)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE agent_rollout_vms');
    await q.query('DROP TABLE agent_rollouts');
    await q.query('DROP INDEX vms_agent_version_idx');
    await q.query('ALTER TABLE vms DROP COLUMN agent_last_update');
    await q.query('ALTER TABLE vms DROP COLUMN agent_target');
  }
}
