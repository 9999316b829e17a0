// Where lqctl finds the server and the credentials: flags, then the environment, then the config
// file ($XDG_CONFIG_HOME/lqctl/config.json, or LQCTL_CONFIG), then the default server. The file
// holds named contexts (a server and its credentials each) and which one is current, as
// kubectl's kubeconfig does; a file of the old single-server format reads as the context
// "default" and is rewritten in the new format by the next change.
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { UsageError } from './errors.js';

/** What `npm start` serves (its REST port, LQ_HTTP_PORT, defaults to 8080). */
export const DEFAULT_SERVER = 'http://localhost:8080';

/** One context of the config file: a server and its credentials. */
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

/** The config file. Secrets live here, so it is written with mode 0600. */
export interface LqctlConfigFile {
  /** The context commands use when neither --context nor LQ_CONTEXT names one. */
  current_context?: string;
  contexts: Record<string, LqctlConfig>;
}

/** The context a first `lqctl login` (or an old single-server file) fills. */
export const DEFAULT_CONTEXT = 'default';

const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,62}$/;

/** A context name as given (--context, LQ_CONTEXT, a verb's argument); UsageError otherwise. */
export function checkContextName(name: string, from: string): string {
  if (!CONTEXT_NAME.test(name)) {
    throw new UsageError(
      `${from} must be 1-63 letters, digits, '.', '_', '@', ':' or '-', starting with a letter or digit (got ${JSON.stringify(name)})`,
    );
  }
  return name;
}

export function configPath(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  if (env.LQCTL_CONFIG) {
    return env.LQCTL_CONFIG;
  }
  const base = env.XDG_CONFIG_HOME || join(home, '.config');
  return join(base, 'lqctl', 'config.json');
}

function credentialsOf(raw: unknown): LqctlConfig {
  const out: LqctlConfig = {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return out;
  }
  for (const key of KEYS) {
    const v = (raw as Record<string, unknown>)[key];
    if (typeof v === 'string') {
      out[key] = v;
    }
  }
  return out;
}

function hasCredentials(c: LqctlConfig): boolean {
  return Boolean(c.api_key || c.refresh_token || c.access_token);
}

/**
 * Reads the config file: no contexts when absent; a UsageError naming the file when it is not
 * valid. The old format ({ server, api_key, … } at the top) reads as the context "default".
 */
export function readConfigFile(
  path: string,
  warn: (line: string) => void = () => {},
): LqctlConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return { contexts: {} };
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
  const raw = parsed as Record<string, unknown>;
  const file: LqctlConfigFile = { contexts: {} };
  if (raw.contexts !== undefined) {
    if (typeof raw.contexts !== 'object' || raw.contexts === null || Array.isArray(raw.contexts)) {
      throw new UsageError(`the config file ${path}: contexts must be an object of contexts`);
    }
    for (const [name, ctx] of Object.entries(raw.contexts)) {
      file.contexts[name] = credentialsOf(ctx);
    }
    if (typeof raw.current_context === 'string') {
      file.current_context = raw.current_context;
    }
  } else {
    const old = credentialsOf(raw);
    if (Object.keys(old).length > 0) {
      file.contexts[DEFAULT_CONTEXT] = old;
      file.current_context = DEFAULT_CONTEXT;
    }
  }
  if (Object.values(file.contexts).some(hasCredentials) && (statSync(path).mode & 0o077) !== 0) {
    warn(`warning: ${path} holds credentials and others may read it: chmod 600 ${path}`);
  }
  return file;
}

/** Writes the config file atomically with mode 0600 (its directory 0700 when created). */
export function writeConfigFile(path: string, file: LqctlConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const contexts: Record<string, Record<string, string>> = {};
  for (const name of Object.keys(file.contexts).sort()) {
    const clean: Record<string, string> = {};
    for (const key of KEYS) {
      const v = file.contexts[name]![key];
      if (v !== undefined) {
        clean[key] = v;
      }
    }
    contexts[name] = clean;
  }
  const out = { current_context: file.current_context, contexts };
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(out, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFileSync passes through the umask; make it exactly 0600.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** The context a command uses: --context, then LQ_CONTEXT, then the file's current one. */
export function contextNameOf(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
  file: LqctlConfigFile,
): { name: string; named: boolean } {
  if (flag !== undefined) {
    return { name: checkContextName(flag, '--context'), named: true };
  }
  if (env.LQ_CONTEXT) {
    return { name: checkContextName(env.LQ_CONTEXT, 'LQ_CONTEXT'), named: true };
  }
  return { name: file.current_context ?? DEFAULT_CONTEXT, named: false };
}

/** One context's settings ({} when the file or the context is absent). */
export function loadConfig(
  path: string,
  warn: (line: string) => void = () => {},
  context?: string,
): LqctlConfig {
  const file = readConfigFile(path, warn);
  return { ...file.contexts[context ?? file.current_context ?? DEFAULT_CONTEXT] };
}

/**
 * Stores one context (the current one, or "default", when none is named), keeping the others;
 * the first context stored becomes the current one.
 */
export function saveConfig(path: string, config: LqctlConfig, context?: string): void {
  const file = readConfigFile(path);
  const name = context ?? file.current_context ?? DEFAULT_CONTEXT;
  file.contexts[name] = config;
  file.current_context ??= name;
  writeConfigFile(path, file);
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
  /**
   * Why the stored credentials are not used: they belong to another server than the one asked
   * for (--server, LQ_SERVER). Commands that need credentials stop with it.
   */
  credentialsProblem?: string;
}

/**
 * Flags win over the environment, which wins over the config file's context `context` (its
 * name, for messages). `others` are the file's contexts, to point at one of the asked server.
 */
export function resolveSettings(
  flags: { server?: string; token?: string },
  env: NodeJS.ProcessEnv,
  config: LqctlConfig,
  context = DEFAULT_CONTEXT,
  others: Record<string, LqctlConfig> = {},
): Settings {
  const serverFrom = flags.server !== undefined ? '--server' : env.LQ_SERVER ? 'LQ_SERVER' : '';
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
  // The file's credentials belong to the context's server: never send them anywhere else.
  const stored = config.server ? normalizeServer(config.server, 'server in the config file') : '';
  if (stored && stored !== server) {
    const settings: Settings = { server, token: undefined, tokenSource: 'none' };
    if (hasCredentials(config)) {
      const match = Object.entries(others)
        .filter(([name, c]) => name !== context && c.server && hasCredentials(c))
        .find(([, c]) => normalizeServer(c.server!, 'server in the config file') === server);
      settings.credentialsProblem =
        `the credentials of context ${context} are for ${stored}, not ${server} (${serverFrom}): ` +
        (match
          ? `use that server's context with --context ${match[0]}`
          : `sign in there with lqctl login --server ${server} --context NAME`) +
        `, or drop ${serverFrom}`;
    }
    return settings;
  }
  if (config.api_key) {
    return { server, token: config.api_key, tokenSource: 'api-key' };
  }
  if (config.access_token) {
    return { server, token: config.access_token, tokenSource: 'session' };
  }
  return { server, token: undefined, tokenSource: 'none' };
}

/** Makes `name` the current context; UsageError (with "did you mean") when there is none. */
export function useContext(path: string, name: string): LqctlConfigFile {
  const file = readConfigFile(path);
  requireContext(file, name, path);
  file.current_context = name;
  writeConfigFile(path, file);
  return file;
}

/** Removes a context (and its credentials); the current one becomes unset when it was that. */
export function deleteContext(path: string, name: string): LqctlConfigFile {
  const file = readConfigFile(path);
  requireContext(file, name, path);
  delete file.contexts[name];
  if (file.current_context === name) {
    delete file.current_context;
  }
  writeConfigFile(path, file);
  return file;
}

/** Creates or changes a context's server; credentials for another server are dropped. */
export function setContextServer(path: string, name: string, server: string): LqctlConfigFile {
  const file = readConfigFile(path);
  const before = file.contexts[name] ?? {};
  file.contexts[name] =
    before.server && normalizeServer(before.server, 'server in the config file') === server
      ? before
      : { server };
  file.current_context ??= name;
  writeConfigFile(path, file);
  return file;
}

function requireContext(file: LqctlConfigFile, name: string, path: string): void {
  if (!file.contexts[name]) {
    const known = Object.keys(file.contexts);
    throw new UsageError(
      `no context ${name} in ${path}${
        known.length > 0
          ? ` (contexts: ${known.join(', ')})`
          : ': lqctl login --context NAME creates one'
      }`,
    );
  }
}
