import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Stored output is bounded per execution (LQ_EXEC_OUTPUT_MAX_BYTES): the bytes kept, and whether
 * some were not (the cap reached, or more than LQ_EXEC_OUTPUT_BUFFER_BYTES waited for a database
 * that was away), so a reader knows the stored output is not all the command wrote.
 */
export class AddExecutionOutputCap1764979200018 implements MigrationInterface {
  name = 'AddExecutionOutputCap1764979200018';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executions
      ADD COLUMN output_stored_bytes bigint NOT NULL DEFAULT 0,
      ADD COLUMN output_truncated boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executions
      DROP COLUMN output_stored_bytes,
      DROP COLUMN output_truncated`);
  }
}
