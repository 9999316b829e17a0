// Environment parsing shared by the NestJS tiers: every config is read once at boot and a bad
// value stops the process with a message naming the variable.

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function envInt(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(
      `${name} must be an integer between ${min} and ${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return n;
}

export function envBool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  if (!['true', 'false', '1', '0'].includes(raw)) {
    throw new ConfigError(`${name} must be true or false (got ${JSON.stringify(raw)})`);
  }
  return raw === 'true' || raw === '1';
}

export function envList(env: NodeJS.ProcessEnv, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') {
    return fallback;
  }
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error';

export function envLogLevel(env: NodeJS.ProcessEnv): LogLevelName {
  const level = env.LQ_LOG_LEVEL ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    throw new ConfigError(`LQ_LOG_LEVEL must be debug, info, warn or error (got ${level})`);
  }
  return level as LogLevelName;
}

export interface NatsEnv {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  credsFile?: string;
}

/** NATS_URL (comma-separated), NATS_USER + NATS_PASSWORD, NATS_TOKEN, NATS_CREDS_FILE. */
export function envNats(env: NodeJS.ProcessEnv): NatsEnv {
  const servers = envList(env, 'NATS_URL', ['nats://127.0.0.1:4222']);
  for (const s of servers) {
    if (!/^(nats|tls|ws|wss):\/\/\S+$/.test(s)) {
      throw new ConfigError(`NATS_URL: ${JSON.stringify(s)} is not a NATS URL (nats://host:port)`);
    }
  }
  if ((env.NATS_USER === undefined) !== (env.NATS_PASSWORD === undefined)) {
    throw new ConfigError('NATS_USER and NATS_PASSWORD must be set together');
  }
  return {
    servers,
    user: env.NATS_USER,
    pass: env.NATS_PASSWORD,
    token: env.NATS_TOKEN || undefined,
    credsFile: env.NATS_CREDS_FILE || undefined,
  };
}

/** NATS rows of the configuration reference, the same for every tier. */
export const NATS_ENV_DOCS: Array<[name: string, fallback: string, meaning: string]> = [
  ['NATS_URL', 'nats://127.0.0.1:4222', 'NATS server URL(s), comma-separated'],
  ['NATS_USER / NATS_PASSWORD', '—', 'user/password credentials'],
  ['NATS_TOKEN', '—', 'token credentials'],
  ['NATS_CREDS_FILE', '—', 'a .creds file (JWT + nkey)'],
];
