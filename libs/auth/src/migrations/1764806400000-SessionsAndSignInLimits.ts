import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A user's session generation (a password change or reset bumps it, which ends its access
 * tokens; its refresh tokens are marked used), and the counters of failed sign-ins per user and
 * per source address that every replica shares.
 */
export class SessionsAndSignInLimits1764806400000 implements MigrationInterface {
  name = 'SessionsAndSignInLimits1764806400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE users ADD COLUMN session_generation integer NOT NULL DEFAULT 0');
    await q.query('CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id)');
    await q.query(`
      CREATE TABLE sign_in_failures (
        key text PRIMARY KEY,
        window_start timestamptz NOT NULL,
        failures integer NOT NULL
      )`);
    await q.query('CREATE INDEX sign_in_failures_window_idx ON sign_in_failures (window_start)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE sign_in_failures');
    await q.query('DROP INDEX refresh_tokens_user_id_idx');
    await q.query('ALTER TABLE users DROP COLUMN session_generation');
  }
}
