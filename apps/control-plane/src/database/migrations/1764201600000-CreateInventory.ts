import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CreateInventory1764201600000 implements MigrationInterface {
  name = 'CreateInventory1764201600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE nodes (
        id text PRIMARY KEY,
        hostname text NOT NULL DEFAULT '',
        daemon_version text NOT NULL DEFAULT '',
        started_at timestamptz,
        last_heartbeat_at timestamptz NOT NULL,
        file_chunk_max_bytes integer NOT NULL DEFAULT 0,
        vm_count integer NOT NULL DEFAULT 0
      )`);
    await q.query(`
      CREATE TABLE vms (
        id text PRIMARY KEY,
        node_id text NOT NULL,
        agent_state text NOT NULL,
        agent_version text NOT NULL DEFAULT '',
        capabilities jsonb NOT NULL DEFAULT '[]'::jsonb,
        hostname text NOT NULL DEFAULT '',
        os jsonb,
        interfaces jsonb NOT NULL DEFAULT '[]'::jsonb,
        connected_since timestamptz,
        last_seen_at timestamptz,
        telemetry jsonb,
        telemetry_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query('CREATE INDEX vms_node_id_idx ON vms (node_id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE vms');
    await q.query('DROP TABLE nodes');
  }
}
