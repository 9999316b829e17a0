import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * How many secrets were replaced in each stored output chunk of an async execution
 * (LQ_OUTPUT_REDACT_*, issue 18 item 2): the stored row says that redaction happened.
 */
export class ExecutionOutputRedactions1764897318200 implements MigrationInterface {
  name = 'ExecutionOutputRedactions1764897318200';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE execution_output ADD COLUMN redactions integer NOT NULL DEFAULT 0');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE execution_output DROP COLUMN redactions');
  }
}
