import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Projects (VMs belong to one), users, API keys, refresh tokens, role bindings, and the audit
 * trail: hash-chained events and the stored outputs of executions, both append-only (a trigger
 * refuses UPDATE, DELETE and TRUNCATE whatever the role; only a superuser can bypass it, and
 * /api/audit/verify then names the row).
 */
export class CreateAccessAndAudit1764374400000 implements MigrationInterface {
  name = 'CreateAccessAndAudit1764374400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE projects (
        id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        name text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`INSERT INTO projects (id, name) VALUES ('default', 'VMs not yet assigned')`);
    await q.query(`
      ALTER TABLE vms ADD COLUMN project_id text NOT NULL DEFAULT 'default'
        REFERENCES projects (id)`);
    await q.query('CREATE INDEX vms_project_id_idx ON vms (project_id)');
    await q.query(`
      CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        username text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
        password_hash text,
        disabled boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        prefix text NOT NULL UNIQUE,
        secret_hash bytea NOT NULL,
        name text NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz,
        last_used_at timestamptz,
        revoked_at timestamptz
      )`);
    await q.query('CREATE INDEX api_keys_user_id_idx ON api_keys (user_id)');
    await q.query(`
      CREATE TABLE refresh_tokens (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        secret_hash bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      )`);
    await q.query('CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at)');
    await q.query(`
      CREATE TABLE role_bindings (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'auditor')),
        project_id text REFERENCES projects (id) ON DELETE CASCADE,
        restrictions jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE UNIQUE INDEX role_bindings_user_role_project_idx
        ON role_bindings (user_id, role, (COALESCE(project_id, '')))`);
    await q.query(`CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL)`);

    await q.query(`
      CREATE TABLE audit_events (
        seq bigint PRIMARY KEY,
        at timestamptz NOT NULL,
        kind text NOT NULL,
        request_id uuid NOT NULL,
        actor text NOT NULL,
        auth_method text NOT NULL,
        source_ip text NOT NULL,
        vm_id text,
        node_id text,
        project_id text,
        operation text NOT NULL,
        params jsonb NOT NULL,
        status text,
        exit_code integer,
        duration_ms integer,
        error text,
        stdout_sha256 text,
        stdout_bytes bigint,
        stderr_sha256 text,
        stderr_bytes bigint,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL
      )`);
    // One index per auditor filter, each ending in seq: filter, newest first, page by cursor.
    for (const [name, columns] of [
      ['audit_events_at_idx', 'at, seq'],
      ['audit_events_actor_idx', 'actor, seq'],
      ['audit_events_vm_idx', 'vm_id, seq'],
      ['audit_events_project_idx', 'project_id, seq'],
      ['audit_events_operation_idx', 'operation, seq'],
      ['audit_events_kind_idx', 'kind, seq'],
      ['audit_events_status_idx', 'status, seq'],
      ['audit_events_request_idx', 'request_id'],
    ]) {
      await q.query(`CREATE INDEX ${name} ON audit_events (${columns})`);
    }
    // Failures are few: "every error of project X" walks them, not the project's whole history.
    await q.query(`
      CREATE INDEX audit_events_failures_idx ON audit_events (project_id, seq)
        WHERE status <> 'ok'`);

    await q.query(`
      CREATE TABLE audit_outputs (
        request_id uuid PRIMARY KEY,
        stdout bytea NOT NULL,
        stderr bytea NOT NULL,
        stdout_truncated boolean NOT NULL,
        stderr_truncated boolean NOT NULL
      )`);
    await q.query(`
      CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege';
      END $$`);
    for (const table of ['audit_events', 'audit_outputs']) {
      await q.query(`
        CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table}
          FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()`);
      await q.query(`
        CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table}
          FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_outputs');
    await q.query('DROP TABLE audit_events');
    await q.query('DROP FUNCTION audit_refuse_change()');
    await q.query('DROP TABLE settings');
    await q.query('DROP TABLE role_bindings');
    await q.query('DROP TABLE refresh_tokens');
    await q.query('DROP TABLE api_keys');
    await q.query('DROP TABLE users');
    await q.query('ALTER TABLE vms DROP COLUMN project_id');
    await q.query('DROP TABLE projects');
  }
}
