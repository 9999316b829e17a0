import { randomBytes } from 'node:crypto';
import { AccessTokens } from './access-token.js';
import {
  generateApiKey,
  hashSecret,
  looksLikeApiKey,
  parseApiKey,
  secretMatches,
} from './api-key.js';
import { AuthRepository, type ApiKeyRow } from './auth.repository.js';
import { AuthErrorCode, AuthException } from './auth.exception.js';
import {
  hashPassword,
  verifyPassword,
  DEFAULT_PASSWORD_PARAMS,
  type PasswordHashParams,
} from './password.js';
import type { Principal } from './principal.js';

/** Failed sign-ins allowed per window, per username and per source address. */
export interface SignInLimits {
  maxFailuresPerUser: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

export const DEFAULT_SIGN_IN_LIMITS: SignInLimits = {
  maxFailuresPerUser: 20,
  maxFailuresPerAddress: 100,
  windowSeconds: 60,
};

export interface AuthConfig {
  /** HS256 secret for access tokens; unset: one generated once and shared through the database. */
  jwtSecret?: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  /** How long an authenticated key or user is remembered before the database is asked again. */
  cacheSeconds: number;
  /** Fixes the bootstrap admin's API key (lq_<8>_<32+>). */
  adminToken?: string;
  passwordParams?: PasswordHashParams;
  signIn?: SignInLimits;
}

export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

export interface BootstrapResult {
  /** The admin key when it was generated now (print it once); undefined otherwise. */
  generatedAdminKey?: string;
  adminCreated: boolean;
  /** LQ_ADMIN_TOKEN names a key that was revoked: it stays revoked (say so at start). */
  adminTokenRevoked?: boolean;
}

const REFRESH = /^lqr_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;
const CACHE_MAX_ENTRIES = 10_000;
const TOUCH_INTERVAL_MS = 60_000;
export const ADMIN_USERNAME = 'admin';

interface Cached {
  principal: Principal;
  until: number;
}

function isStoreError(err: unknown): boolean {
  return !(err instanceof AuthException);
}

/**
 * Authentication for every transport: a bearer token is an API key (lq_…) or an access JWT; the
 * answer is a Principal with its role bindings, read from the database and remembered for
 * `cacheSeconds`. Login with scrypt-hashed passwords, refresh tokens used once, the bootstrap
 * admin.
 */
export class AuthService {
  private tokens: AccessTokens | undefined;
  private readonly cache = new Map<string, Cached>();
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly repo: AuthRepository,
    private readonly config: AuthConfig,
  ) {}

  /** Reads (or creates) the JWT secret; call once at start. */
  async init(): Promise<void> {
    const secret =
      this.config.jwtSecret ??
      (await this.repo.sharedSetting('jwt_secret', () => randomBytes(48).toString('base64')));
    this.tokens = new AccessTokens(Buffer.from(secret, 'utf8'), this.config.accessTokenTtlSeconds);
  }

  /**
   * The admin user (no password: never a default one) with a global admin binding and an API
   * key: LQ_ADMIN_TOKEN's when given, else one generated now and returned to be printed once.
   */
  async bootstrap(): Promise<BootstrapResult> {
    const fixed = this.config.adminToken ? parseApiKey(this.config.adminToken) : undefined;
    if (this.config.adminToken && !fixed) {
      throw new Error(
        'LQ_ADMIN_TOKEN must look like lq_<8 lowercase letters/digits>_<32+ letters/digits>',
      );
    }
    return this.repo.underBootstrapLock(async (q) => {
      let [user] = await q<{ id: string }>('SELECT id FROM users WHERE username = $1', [
        ADMIN_USERNAME,
      ]);
      const adminCreated = !user;
      if (!user) {
        [user] = await q<{ id: string }>('INSERT INTO users (username) VALUES ($1) RETURNING id', [
          ADMIN_USERNAME,
        ]);
        if (!user) {
          throw new Error('could not create the admin user');
        }
        await q(
          `INSERT INTO role_bindings (user_id, role, project_id) VALUES ($1, 'admin', NULL)`,
          [user.id],
        );
      }
      if (fixed) {
        const [existing] = await q<{ user_id: string }>(
          'SELECT user_id FROM api_keys WHERE prefix = $1',
          [fixed.prefix],
        );
        if (!existing) {
          await q(
            `INSERT INTO api_keys (user_id, prefix, secret_hash, name) VALUES ($1, $2, $3, 'LQ_ADMIN_TOKEN')`,
            [user.id, fixed.prefix, hashSecret(fixed.secret)],
          );
        } else if (existing.user_id !== user.id) {
          throw new Error('LQ_ADMIN_TOKEN’s prefix belongs to another user’s key');
        }
        // A revocation stands: restarting with the same LQ_ADMIN_TOKEN must not bring back a
        // key an admin revoked (it is a bootstrap secret, to be unset after first use).
        const [revoked] = await q<{ revoked: boolean }>(
          'SELECT revoked_at IS NOT NULL AS revoked FROM api_keys WHERE prefix = $1',
          [fixed.prefix],
        );
        if (revoked?.revoked) {
          return { adminCreated, adminTokenRevoked: true };
        }
        await q(`UPDATE api_keys SET expires_at = NULL, secret_hash = $2 WHERE prefix = $1`, [
          fixed.prefix,
          hashSecret(fixed.secret),
        ]);
        return { adminCreated };
      }
      if (!adminCreated) {
        return { adminCreated };
      }
      const key = generateApiKey();
      await q(
        `INSERT INTO api_keys (user_id, prefix, secret_hash, name) VALUES ($1, $2, $3, 'bootstrap')`,
        [user.id, key.prefix, hashSecret(key.secret)],
      );
      return { adminCreated, generatedAdminKey: key.token };
    });
  }

  /** The principal behind a bearer token; AuthException UNAUTHENTICATED (or AUTH_UNAVAILABLE). */
  async authenticate(token: string | undefined): Promise<Principal> {
    if (!token) {
      throw AuthException.unauthenticated(
        'missing bearer token (Authorization: Bearer <API key or access token>)',
      );
    }
    const now = Date.now();
    const hit = this.cache.get(token);
    if (hit && hit.until > now) {
      return hit.principal;
    }
    try {
      const { principal, until } = looksLikeApiKey(token)
        ? await this.byApiKey(token, now)
        : await this.byAccessToken(token, now);
      if (this.cache.size >= CACHE_MAX_ENTRIES) {
        this.cache.clear();
      }
      this.cache.set(token, { principal, until });
      return principal;
    } catch (err) {
      if (isStoreError(err)) {
        throw new AuthException(
          AuthErrorCode.AUTH_UNAVAILABLE,
          `the user store cannot be read: ${(err as Error).message}`,
        );
      }
      throw err;
    }
  }

  /**
   * The principal of an enabled user by name, with its current bindings, for work a replica
   * carries on for a user who is no longer on the line (a rollout resumed by another replica);
   * undefined when the user is gone or disabled.
   */
  async principalOfUser(username: string): Promise<Principal | undefined> {
    const user = await this.repo.userForLogin(username);
    if (!user || user.disabled) {
      return undefined;
    }
    return {
      userId: user.id,
      username: user.username,
      authMethod: 'jwt',
      bindings: await this.repo.bindingsOf(user.id),
    };
  }

  /**
   * `stored` (a principal saved with work another replica carries on) as it stands now, with its
   * user's current bindings; undefined when the user is gone or disabled, or when it acted with
   * an API key that has since been revoked, has expired, or belongs to someone else.
   */
  async principalNow(stored: Principal): Promise<Principal | undefined> {
    if (stored.authMethod === 'api_key') {
      const key = stored.keyPrefix ? await this.repo.apiKeyByPrefix(stored.keyPrefix) : undefined;
      if (
        !key ||
        key.user_id !== stored.userId ||
        key.disabled ||
        key.revoked_at ||
        (key.expires_at && key.expires_at.getTime() <= Date.now())
      ) {
        return undefined;
      }
      return {
        ...stored,
        username: key.username,
        bindings: await this.repo.bindingsOf(key.user_id),
      };
    }
    const user = await this.repo.userById(stored.userId);
    if (!user || user.disabled) {
      return undefined;
    }
    return { ...stored, username: user.username, bindings: await this.repo.bindingsOf(user.id) };
  }

  /**
   * A password sign-in. Past the failure limits of the username or the source address it is
   * refused with RATE_LIMITED before the password is even hashed (scrypt is the expensive part).
   */
  async login(username: string, password: string, sourceAddress = ''): Promise<TokenPair> {
    const userKey = `user:${username}`;
    await this.refuseWhenLimited(userKey, sourceAddress);
    const user = await this.repo.userForLogin(username);
    // Hash even when the user is unknown, so timing does not tell which names exist.
    const stored = user?.password_hash ?? (await this.dummyHash());
    const ok = await verifyPassword(password, stored);
    if (!user || !ok || !user.password_hash) {
      await this.repo.recordSignInFailure(
        [userKey, `address:${sourceAddress}`],
        this.signIn.windowSeconds,
      );
      throw AuthException.unauthenticated('wrong username or password');
    }
    if (user.disabled) {
      throw AuthException.unauthenticated(`user ${user.username} is disabled`);
    }
    await this.repo.clearSignInFailures(userKey);
    return this.issue(user.id, user.username, user.session_generation);
  }

  /**
   * A user's own password change: the current password must be right (counted like a failed
   * sign-in when not); every session of the user ends, this one's included.
   */
  async changeOwnPassword(
    userId: string,
    current: string,
    next: string,
    sourceAddress = '',
  ): Promise<void> {
    const user = await this.repo.userById(userId);
    if (!user || user.disabled) {
      throw AuthException.unauthenticated('user disabled or removed');
    }
    const userKey = `user:${user.username}`;
    await this.refuseWhenLimited(userKey, sourceAddress);
    const login = await this.repo.userForLogin(user.username);
    if (!login?.password_hash || !(await verifyPassword(current, login.password_hash))) {
      await this.repo.recordSignInFailure(
        [userKey, `address:${sourceAddress}`],
        this.signIn.windowSeconds,
      );
      throw AuthException.unauthenticated('current_password is wrong');
    }
    await this.repo.updateUser(userId, { passwordHash: await this.hashPassword(next) });
    this.forget((p) => p.userId === userId);
  }

  private get signIn(): SignInLimits {
    return this.config.signIn ?? DEFAULT_SIGN_IN_LIMITS;
  }

  private async refuseWhenLimited(userKey: string, sourceAddress: string): Promise<void> {
    const limits = this.signIn;
    const counts = await this.repo.signInFailures(
      [userKey, `address:${sourceAddress}`],
      limits.windowSeconds,
    );
    for (const c of counts) {
      const max = c.key === userKey ? limits.maxFailuresPerUser : limits.maxFailuresPerAddress;
      if (c.failures >= max) {
        throw new AuthException(
          AuthErrorCode.RATE_LIMITED,
          `too many failed sign-ins for this ${c.key === userKey ? 'user' : 'address'} (${c.failures} in ${limits.windowSeconds} s); try again in ${c.retry_after} s`,
          undefined,
          c.retry_after,
        );
      }
    }
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const m = REFRESH.exec(refreshToken);
    if (!m) {
      throw AuthException.unauthenticated('malformed refresh token');
    }
    const userId = await this.repo.consumeRefreshToken(m[1]!, hashSecret(m[2]!));
    if (!userId) {
      throw AuthException.unauthenticated('refresh token unknown, already used, or expired');
    }
    const user = await this.repo.userById(userId);
    if (!user || user.disabled) {
      throw AuthException.unauthenticated('user disabled or removed');
    }
    return this.issue(user.id, user.username, user.session_generation);
  }

  /** A new API key for a user: the token is returned once and never stored. */
  async createApiKey(
    userId: string,
    name: string,
    expiresAt: Date | null,
  ): Promise<{ key: ApiKeyRow; token: string }> {
    const generated = generateApiKey();
    const key = await this.repo.createApiKey(
      userId,
      generated.prefix,
      hashSecret(generated.secret),
      name,
      expiresAt,
    );
    return { key, token: generated.token };
  }

  hashPassword(password: string): Promise<string> {
    return hashPassword(password, this.config.passwordParams ?? DEFAULT_PASSWORD_PARAMS);
  }

  /** Forgets cached principals (after revoking a key or changing a user's bindings). */
  forget(match?: (p: Principal) => boolean): void {
    if (!match) {
      this.cache.clear();
      return;
    }
    for (const [token, c] of this.cache) {
      if (match(c.principal)) {
        this.cache.delete(token);
      }
    }
  }

  private async byApiKey(
    token: string,
    now: number,
  ): Promise<{ principal: Principal; until: number }> {
    const parsed = parseApiKey(token);
    if (!parsed) {
      throw AuthException.unauthenticated('malformed API key');
    }
    const row = await this.repo.apiKeyByPrefix(parsed.prefix);
    if (!row || !secretMatches(parsed.secret, row.secret_hash)) {
      throw AuthException.unauthenticated('unknown API key');
    }
    if (row.revoked_at) {
      throw AuthException.unauthenticated(`API key ${row.prefix} was revoked`);
    }
    if (row.expires_at && row.expires_at.getTime() <= now) {
      throw AuthException.unauthenticated(`API key ${row.prefix} expired`);
    }
    if (row.disabled) {
      throw AuthException.unauthenticated(`user ${row.username} is disabled`);
    }
    if ((this.touched.get(row.id) ?? 0) + TOUCH_INTERVAL_MS <= now) {
      this.touched.set(row.id, now);
      void this.repo.touchApiKey(row.id).catch(() => this.touched.delete(row.id));
    }
    const principal: Principal = {
      userId: row.user_id,
      username: row.username,
      authMethod: 'api_key',
      keyId: row.id,
      keyPrefix: row.prefix,
      bindings: await this.repo.bindingsOf(row.user_id),
    };
    const until = Math.min(
      now + this.config.cacheSeconds * 1000,
      row.expires_at?.getTime() ?? Infinity,
    );
    return { principal, until };
  }

  private async byAccessToken(
    token: string,
    now: number,
  ): Promise<{ principal: Principal; until: number }> {
    const claims = await this.accessTokens().verify(token);
    if ('invalid' in claims) {
      throw AuthException.unauthenticated(`access token rejected: ${claims.invalid}`);
    }
    const user = await this.repo.userById(claims.userId);
    if (!user || user.disabled) {
      throw AuthException.unauthenticated('user disabled or removed');
    }
    if (claims.generation !== user.session_generation) {
      throw AuthException.unauthenticated(
        'access token ended: the user’s password was changed since it was issued; sign in again',
      );
    }
    const principal: Principal = {
      userId: user.id,
      username: user.username,
      authMethod: 'jwt',
      bindings: await this.repo.bindingsOf(user.id),
    };
    // Never remembered past the token's own expiry, which verify() checked against `now`.
    return { principal, until: Math.min(now + this.config.cacheSeconds * 1000, claims.expiresAt) };
  }

  private async issue(userId: string, username: string, generation: number): Promise<TokenPair> {
    const secret = randomBytes(32).toString('base64url');
    const ttl = this.config.refreshTokenTtlSeconds;
    const id = await this.repo.createRefreshToken(
      userId,
      hashSecret(secret),
      new Date(Date.now() + ttl * 1000),
    );
    return {
      access_token: await this.accessTokens().sign({ userId, username, generation }),
      token_type: 'Bearer',
      expires_in: this.config.accessTokenTtlSeconds,
      refresh_token: `lqr_${id}_${secret}`,
      refresh_expires_in: ttl,
    };
  }

  private accessTokens(): AccessTokens {
    if (!this.tokens) {
      throw new Error('AuthService.init() was not called');
    }
    return this.tokens;
  }

  private dummy: Promise<string> | undefined;
  private dummyHash(): Promise<string> {
    this.dummy ??= this.hashPassword(randomBytes(16).toString('hex'));
    return this.dummy;
  }
}
