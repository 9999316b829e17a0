import type { MigrationInterface, QueryRunner } from 'typeorm';

const BEFORE = `'admin', 'operator', 'viewer', 'auditor'`;
const AFTER = `'admin', 'operator', 'viewer', 'auditor', 'output_auditor'`;

/**
 * The `output_auditor` role (issue 18 item 2): reading executions' stored output is its own
 * permission, `audit.read_output`, which `auditor` (the history) no longer holds.
 */
export class OutputAuditorRole1764897318100 implements MigrationInterface {
  name = 'OutputAuditorRole1764897318100';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE role_bindings DROP CONSTRAINT role_bindings_role_check');
    await q.query(
      `ALTER TABLE role_bindings ADD CONSTRAINT role_bindings_role_check CHECK (role IN (${AFTER}))`,
    );
  }

  /** Removes the role's bindings: the old check cannot hold them. */
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM role_bindings WHERE role = 'output_auditor'`);
    await q.query('ALTER TABLE role_bindings DROP CONSTRAINT role_bindings_role_check');
    await q.query(
      `ALTER TABLE role_bindings ADD CONSTRAINT role_bindings_role_check CHECK (role IN (${BEFORE}))`,
    );
  }
}
