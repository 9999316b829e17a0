import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Signed checkpoints of the audit chain's head (libs/audit/src/offline/checkpoint.ts): one row
 * per checkpointed head, append-only like the audit rows (the same trigger). The copy that an
 * owner of this table cannot reach is the JetStream stream; this one lets a replica verify
 * when JetStream is away and keeps the history of checkpoints for exports.
 */
export class CreateAuditCheckpoints1764900000000 implements MigrationInterface {
  name = 'CreateAuditCheckpoints1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_checkpoints (
        seq bigint PRIMARY KEY,
        hash bytea NOT NULL CHECK (length(hash) = 32),
        -- As signed (ISO 8601 text): the signature covers these exact characters.
        at text NOT NULL,
        key_id text NOT NULL,
        signature text NOT NULL
      )`);
    await q.query(`
      CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
        FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()`);
    await q.query(`
      CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_checkpoints');
  }
}
