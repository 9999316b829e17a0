import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Asynchronous executions: their state (mutable, unlike the audit trail, which records each one's
 * intent and outcome as usual) and their streamed output, chunk by chunk with the agent's
 * sequence numbers, so a client can resume from the last one it saw.
 */
export class CreateExecutions1764460800000 implements MigrationInterface {
  name = 'CreateExecutions1764460800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE executions (
        id uuid PRIMARY KEY,
        vm_id text NOT NULL,
        node_id text NOT NULL,
        project_id text NOT NULL,
        run_id uuid,
        actor text NOT NULL,
        request jsonb NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
          'timed_out', 'cancelled', 'agent_lost')),
        exit_code integer,
        signal text,
        error text,
        stdout_total_bytes bigint,
        stderr_total_bytes bigint,
        timeout_ms integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        ended_at timestamptz
      )`);
    await q.query('CREATE INDEX executions_vm_idx ON executions (vm_id, created_at)');
    await q.query(
      'CREATE INDEX executions_run_idx ON executions (run_id) WHERE run_id IS NOT NULL',
    );
    await q.query(
      `CREATE INDEX executions_active_idx ON executions (started_at)
         WHERE status IN ('pending', 'running')`,
    );
    await q.query(`
      CREATE TABLE execution_output (
        execution_id uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        stream smallint NOT NULL,
        data bytea NOT NULL,
        dropped_bytes bigint NOT NULL DEFAULT 0,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (execution_id, seq)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE execution_output');
    await q.query('DROP TABLE executions');
  }
}
