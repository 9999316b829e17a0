// Where lqctl finds the server and the credentials: flags, then the environment, then the config
// file ($XDG_CONFIG_HOME/lqctl/config.json, or LQCTL_CONFIG), then the default server.
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { UsageError } from './errors.js';

/** What `npm start` serves (its REST port, LQ_HTTP_PORT, defaults to 8080). */
export const DEFAULT_SERVER = 'http://localhost:8080';

/** The config file. Secrets live here, so it is written with mode 0600. */
export interface LqctlConfig {
  server?: string;
  /** Set by `lqctl login --api-key`. */
  api_key?: string;
  /** Set by `lqctl login --username`: a session that refreshes itself. */
  username?: string;
  access_token?: string;
  refresh_token?: string;
  /** ISO time the access token stops being accepted. */
  access_expires_at?: string;
}

const KEYS: ReadonlyArray<keyof LqctlConfig> = [
  'server',
  'api_key',
  'username',
  'access_token',
  'refresh_token',
  'access_expires_at',
];

export function configPath(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  if (env.LQCTL_CONFIG) {
    return env.LQCTL_CONFIG;
  }
  const base = env.XDG_CONFIG_HOME || join(home, '.config');
  return join(base, 'lqctl', 'config.json');
}

/** Reads the config file: {} when absent; a UsageError naming the file when it is not valid. */
export function loadConfig(path: string, warn: (line: string) => void = () => {}): LqctlConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return {};
    }
    throw new UsageError(`cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`the config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`the config file ${path} must hold a JSON object`);
  }
  const out: LqctlConfig = {};
  for (const key of KEYS) {
    const v = (parsed as Record<string, unknown>)[key];
    if (typeof v === 'string') {
      out[key] = v;
    }
  }
  if ((out.api_key || out.refresh_token) && (statSync(path).mode & 0o077) !== 0) {
    warn(`warning: ${path} holds credentials and others may read it: chmod 600 ${path}`);
  }
  return out;
}

/** Writes the config file atomically with mode 0600 (its directory 0700 when created). */
export function saveConfig(path: string, config: LqctlConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const clean: Record<string, string> = {};
  for (const key of KEYS) {
    const v = config[key];
    if (v !== undefined) {
      clean[key] = v;
    }
  }
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(clean, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFileSync passes through the umask; make it exactly 0600.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** A server URL without a trailing slash; UsageError naming where it came from otherwise. */
export function normalizeServer(url: string, from: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`${from} must be a URL like http://localhost:8080 (got ${url})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`${from} must be an http:// or https:// URL (got ${url})`);
  }
  return u.toString().replace(/\/+$/, '');
}

export type TokenSource = 'flag' | 'env' | 'api-key' | 'session' | 'none';

export interface Settings {
  server: string;
  token: string | undefined;
  tokenSource: TokenSource;
}

/** Flags win over the environment, which wins over the config file. */
export function resolveSettings(
  flags: { server?: string; token?: string },
  env: NodeJS.ProcessEnv,
  config: LqctlConfig,
): Settings {
  const server =
    flags.server !== undefined
      ? normalizeServer(flags.server, '--server')
      : env.LQ_SERVER
        ? normalizeServer(env.LQ_SERVER, 'LQ_SERVER')
        : config.server
          ? normalizeServer(config.server, 'server in the config file')
          : DEFAULT_SERVER;
  if (flags.token !== undefined) {
    return { server, token: flags.token, tokenSource: 'flag' };
  }
  if (env.LQ_TOKEN) {
    return { server, token: env.LQ_TOKEN, tokenSource: 'env' };
  }
  // The file's credentials belong to the file's server: never send them anywhere else.
  if (config.server && normalizeServer(config.server, 'server in the config file') !== server) {
    return { server, token: undefined, tokenSource: 'none' };
  }
  if (config.api_key) {
    return { server, token: config.api_key, tokenSource: 'api-key' };
  }
  if (config.access_token) {
    return { server, token: config.access_token, tokenSource: 'session' };
  }
  return { server, token: undefined, tokenSource: 'none' };
}
