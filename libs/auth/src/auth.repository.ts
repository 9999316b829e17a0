import { DataSource } from 'typeorm';
import { isRole, parseRestrictions } from './permissions.js';
import type { Binding } from './principal.js';

export interface UserRow {
  id: string;
  username: string;
  disabled: boolean;
  has_password: boolean;
  created_at: Date;
}

export interface ApiKeyRow {
  id: string;
  user_id: string;
  prefix: string;
  name: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface BindingRow {
  id: string;
  user_id: string;
  username: string;
  role: string;
  project_id: string | null;
  restrictions: unknown;
  created_at: Date;
}

export interface ProjectRow {
  id: string;
  name: string;
  created_at: Date;
  vm_count: number;
}

/** TypeORM gives UPDATE/DELETE … RETURNING as [rows, count] and INSERT … RETURNING as rows. */
function returning(result: unknown): unknown[] {
  const r = result as unknown[];
  return Array.isArray(r[0]) && typeof r[1] === 'number' ? (r[0] as unknown[]) : r;
}

type ApiKeyAuthRow = ApiKeyRow & { secret_hash: Buffer; username: string; disabled: boolean };
type LoginRow = {
  id: string;
  username: string;
  disabled: boolean;
  password_hash: string | null;
  session_generation: number;
};

/** A user as authentication reads it (the session generation ends old access tokens). */
export type SessionUserRow = UserRow & { session_generation: number };

/** A statement runner for the bootstrap transaction. */
export type SqlRunner = <T>(sql: string, params?: unknown[]) => Promise<T[]>;

// Bootstrap of replicas that start together is serialised by this lock.
const BOOTSTRAP_LOCK = 0x4c51_4153; // "LQAS"

/** Users, API keys, refresh tokens, projects and role bindings; the only SQL for them. */
export class AuthRepository {
  constructor(private readonly ds: DataSource) {}

  async apiKeyByPrefix(
    prefix: string,
  ): Promise<
    (ApiKeyRow & { secret_hash: Buffer; username: string; disabled: boolean }) | undefined
  > {
    const rows = await this.rows<ApiKeyAuthRow>(
      `SELECT k.*, u.username, u.disabled FROM api_keys k JOIN users u ON u.id = k.user_id
       WHERE k.prefix = $1`,
      [prefix],
    );
    return rows[0];
  }

  async touchApiKey(id: string): Promise<void> {
    await this.rows<never>('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]);
  }

  async userById(id: string): Promise<SessionUserRow | undefined> {
    const rows = await this.rows<SessionUserRow>(
      `SELECT id, username, disabled, password_hash IS NOT NULL AS has_password, created_at,
              session_generation
       FROM users WHERE id = $1`,
      [id],
    );
    return rows[0];
  }

  async userForLogin(username: string): Promise<LoginRow | undefined> {
    const rows = await this.rows<LoginRow>(
      `SELECT id, username, disabled, password_hash, session_generation
       FROM users WHERE username = $1`,
      [username],
    );
    return rows[0];
  }

  /**
   * Ends a user's sessions: its access tokens stop verifying (the generation they carry is
   * old) and its unused refresh tokens are spent. A new password and disabling do it.
   */
  private async endSessions(m: SqlRunner, userId: string): Promise<void> {
    await m('UPDATE users SET session_generation = session_generation + 1 WHERE id = $1', [userId]);
    await m('UPDATE refresh_tokens SET used_at = now() WHERE user_id = $1 AND used_at IS NULL', [
      userId,
    ]);
  }

  /** Failed sign-ins counted under `keys` in the current window, and seconds it has left. */
  async signInFailures(
    keys: string[],
    windowSeconds: number,
  ): Promise<Array<{ key: string; failures: number; retry_after: number }>> {
    return this.rows(
      `SELECT key, failures,
              GREATEST(1, CEIL(EXTRACT(EPOCH FROM window_start + make_interval(secs => $2) - now())))::int
                AS retry_after
       FROM sign_in_failures
       WHERE key = ANY($1::text[]) AND window_start > now() - make_interval(secs => $2)`,
      [keys, windowSeconds],
    );
  }

  /** Counts one failed sign-in under each key (a window starts at its first failure). */
  async recordSignInFailure(keys: string[], windowSeconds: number): Promise<void> {
    await this.rows(
      `INSERT INTO sign_in_failures (key, window_start, failures)
       SELECT k, now(), 1 FROM unnest($1::text[]) AS k
       ON CONFLICT (key) DO UPDATE SET
         failures = CASE WHEN sign_in_failures.window_start > now() - make_interval(secs => $2)
                         THEN sign_in_failures.failures + 1 ELSE 1 END,
         window_start = CASE WHEN sign_in_failures.window_start > now() - make_interval(secs => $2)
                             THEN sign_in_failures.window_start ELSE now() END`,
      [keys, windowSeconds],
    );
    if (Math.random() < 0.01) {
      await this.rows(
        `DELETE FROM sign_in_failures WHERE window_start < now() - make_interval(secs => $1)`,
        [windowSeconds],
      );
    }
  }

  async clearSignInFailures(key: string): Promise<void> {
    await this.rows('DELETE FROM sign_in_failures WHERE key = $1', [key]);
  }

  async bindingsOf(userId: string): Promise<Binding[]> {
    const rows = await this.rows<{
      role: string;
      project_id: string | null;
      restrictions: unknown;
    }>('SELECT role, project_id, restrictions FROM role_bindings WHERE user_id = $1', [userId]);
    return rows
      .filter((r) => isRole(r.role))
      .map((r) => ({
        role: r.role as Binding['role'],
        projectId: r.project_id,
        restrictions: parseRestrictions(r.restrictions),
      }));
  }

  async listUsers(): Promise<UserRow[]> {
    return this.rows<UserRow>(
      `SELECT id, username, disabled, password_hash IS NOT NULL AS has_password, created_at
       FROM users ORDER BY username`,
    );
  }

  async createUser(username: string, passwordHash: string | null): Promise<UserRow | undefined> {
    const rows = await this.rows<UserRow>(
      `INSERT INTO users (username, password_hash) VALUES ($1, $2)
       ON CONFLICT (username) DO NOTHING
       RETURNING id, username, disabled, password_hash IS NOT NULL AS has_password, created_at`,
      [username, passwordHash],
    );
    return rows[0];
  }

  /** Sets a password or disables a user; either ends the user's sessions. */
  async updateUser(
    id: string,
    change: { passwordHash?: string | null; disabled?: boolean },
  ): Promise<UserRow | undefined> {
    return this.ds.transaction(async (m) => {
      const q: SqlRunner = async <R>(sql: string, p?: unknown[]) =>
        returning(await m.query<unknown>(sql, p)) as R[];
      const rows = await q<UserRow>(
        `UPDATE users SET
           password_hash = CASE WHEN $2 THEN $3 ELSE password_hash END,
           disabled = COALESCE($4, disabled)
         WHERE id = $1
         RETURNING id, username, disabled, password_hash IS NOT NULL AS has_password, created_at`,
        [
          id,
          change.passwordHash !== undefined,
          change.passwordHash ?? null,
          change.disabled ?? null,
        ],
      );
      if (rows[0] && (change.passwordHash !== undefined || change.disabled === true)) {
        await this.endSessions(q, id);
      }
      return rows[0];
    });
  }

  async createApiKey(
    userId: string,
    prefix: string,
    secretHash: Buffer,
    name: string,
    expiresAt: Date | null,
  ): Promise<ApiKeyRow> {
    const rows = await this.rows<ApiKeyRow>(
      `INSERT INTO api_keys (user_id, prefix, secret_hash, name, expires_at)
       VALUES ($1, $2, $3, $4, $5)
       RETURNING id, user_id, prefix, name, created_at, expires_at, last_used_at, revoked_at`,
      [userId, prefix, secretHash, name, expiresAt],
    );
    return rows[0]!;
  }

  async listApiKeys(userId: string): Promise<ApiKeyRow[]> {
    return this.rows<ApiKeyRow>(
      `SELECT id, user_id, prefix, name, created_at, expires_at, last_used_at, revoked_at
       FROM api_keys WHERE user_id = $1 ORDER BY created_at`,
      [userId],
    );
  }

  /** The user an API key belongs to, or undefined. */
  async apiKeyOwner(id: string): Promise<string | undefined> {
    const rows = await this.rows<{ user_id: string }>(
      'SELECT user_id FROM api_keys WHERE id = $1',
      [id],
    );
    return rows[0]?.user_id;
  }

  async revokeApiKey(id: string): Promise<ApiKeyRow | undefined> {
    const rows = await this.rows<ApiKeyRow>(
      `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
       RETURNING id, user_id, prefix, name, created_at, expires_at, last_used_at, revoked_at`,
      [id],
    );
    return rows[0];
  }

  async createRefreshToken(userId: string, secretHash: Buffer, expiresAt: Date): Promise<string> {
    const rows = await this.rows<{ id: string }>(
      `INSERT INTO refresh_tokens (user_id, secret_hash, expires_at) VALUES ($1, $2, $3)
       RETURNING id`,
      [userId, secretHash, expiresAt],
    );
    return rows[0]!.id;
  }

  /** Uses a refresh token once: the user it was for, or undefined (unknown, used, expired). */
  async consumeRefreshToken(id: string, secretHash: Buffer): Promise<string | undefined> {
    const rows = await this.rows<{ user_id: string }>(
      `UPDATE refresh_tokens SET used_at = now()
       WHERE id = $1 AND secret_hash = $2 AND used_at IS NULL AND expires_at > now()
       RETURNING user_id`,
      [id, secretHash],
    );
    return rows[0]?.user_id;
  }

  async listProjects(): Promise<ProjectRow[]> {
    return this.rows<ProjectRow>(
      `SELECT p.id, p.name, p.created_at, (SELECT count(*)::int FROM vms v WHERE v.project_id = p.id) AS vm_count
       FROM projects p ORDER BY p.id`,
    );
  }

  async createProject(id: string, name: string): Promise<ProjectRow | undefined> {
    const rows = await this.rows<ProjectRow>(
      `INSERT INTO projects (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING
       RETURNING id, name, created_at, 0 AS vm_count`,
      [id, name],
    );
    return rows[0];
  }

  async projectExists(id: string): Promise<boolean> {
    const rows = await this.rows<{ '?column?': number }>('SELECT 1 FROM projects WHERE id = $1', [
      id,
    ]);
    return rows.length > 0;
  }

  /** Moves a VM to a project; false when the VM is unknown. */
  async setVmProject(vmId: string, projectId: string): Promise<boolean> {
    const rows = await this.rows<{ id: string }>(
      'UPDATE vms SET project_id = $2, updated_at = now() WHERE id = $1 RETURNING id',
      [vmId, projectId],
    );
    return rows.length > 0;
  }

  async listBindings(): Promise<BindingRow[]> {
    return this.rows<BindingRow>(
      `SELECT b.id, b.user_id, u.username, b.role, b.project_id, b.restrictions, b.created_at
       FROM role_bindings b JOIN users u ON u.id = b.user_id ORDER BY u.username, b.created_at`,
    );
  }

  async createBinding(
    userId: string,
    role: string,
    projectId: string | null,
    restrictions: object,
  ): Promise<BindingRow | undefined> {
    const rows = await this.rows<BindingRow>(
      `INSERT INTO role_bindings (user_id, role, project_id, restrictions)
       VALUES ($1, $2, $3, $4::jsonb)
       ON CONFLICT (user_id, role, (COALESCE(project_id, ''))) DO UPDATE
         SET restrictions = EXCLUDED.restrictions
       RETURNING id, user_id, '' AS username, role, project_id, restrictions, created_at`,
      [userId, role, projectId, JSON.stringify(restrictions)],
    );
    return rows[0];
  }

  async bindingById(id: string): Promise<BindingRow | undefined> {
    const rows = await this.rows<BindingRow>(
      `SELECT b.id, b.user_id, u.username, b.role, b.project_id, b.restrictions, b.created_at
       FROM role_bindings b JOIN users u ON u.id = b.user_id WHERE b.id = $1`,
      [id],
    );
    return rows[0];
  }

  async deleteBinding(id: string): Promise<BindingRow | undefined> {
    const rows = await this.rows<BindingRow>(
      `DELETE FROM role_bindings WHERE id = $1
       RETURNING id, user_id, '' AS username, role, project_id, restrictions, created_at`,
      [id],
    );
    return rows[0];
  }

  /** A value shared by every replica, created by the first to ask (e.g. the JWT secret). */
  async sharedSetting(key: string, create: () => string): Promise<string> {
    await this.rows<{ value: string }>(
      'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
      [key, create()],
    );
    const rows = await this.rows<{ value: string }>('SELECT value FROM settings WHERE key = $1', [
      key,
    ]);
    return rows[0]!.value;
  }

  /**
   * Runs `work` holding the bootstrap lock in a transaction (replicas starting together make
   * one admin, not two).
   */
  async underBootstrapLock<T>(work: (q: SqlRunner) => Promise<T>): Promise<T> {
    return this.ds.transaction(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
      return work(
        async <R>(sql: string, p?: unknown[]) => returning(await m.query<unknown>(sql, p)) as R[],
      );
    });
  }

  private async rows<T>(sql: string, params?: unknown[]): Promise<T[]> {
    return returning(await this.ds.query<unknown>(sql, params)) as T[];
  }
}
