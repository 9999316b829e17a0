// Environment parsing shared by the NestJS tiers: every config is read once at boot and a bad
// value stops the process with a message naming the variable.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

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

/** TLS of the NATS connection: the server is verified against `caFile` (else the system CAs). */
export interface NatsTlsEnv {
  /** PEM CA bundle the server's certificate must chain to (NATS_TLS_CA). */
  caFile?: string;
  /** Client certificate and key (NATS_TLS_CERT, NATS_TLS_KEY), for servers that ask for one. */
  certFile?: string;
  keyFile?: string;
}

export interface NatsEnv {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  credsFile?: string;
  /** Set: the connection must use TLS (a server that does not offer it is refused). */
  tls?: NatsTlsEnv;
  /**
   * How often the server is pinged, and how many unanswered pings mean it is gone: a server
   * that went silent (not closed: a host or network failure) is left for another of NATS_URL
   * (or one the cluster announced) after about interval × (maxPingOut + 1).
   */
  pingIntervalMs: number;
  maxPingOut: number;
}

/**
 * NATS_URL (comma-separated), NATS_USER + NATS_PASSWORD, NATS_TOKEN, NATS_CREDS_FILE, and TLS:
 * NATS_TLS_CA, NATS_TLS_CERT + NATS_TLS_KEY, or a tls:// URL (then with the system's CAs).
 */
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
    tls: envNatsTls(env, servers),
    pingIntervalMs: envInt(env, 'NATS_PING_INTERVAL_MS', 2000, 100, 600_000),
    maxPingOut: envInt(env, 'NATS_MAX_PINGS_OUT', 2, 1, 100),
  };
}

/** Reads a PEM file named by `name`, failing with the variable's name and the reason. */
function pemFile(env: NodeJS.ProcessEnv, name: string): { path: string; text: string } {
  const path = env[name]!;
  try {
    return { path, text: readFileSync(path, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`${name}: cannot read ${path} (${code})`);
  }
}

function certificate(name: string, path: string, text: string): X509Certificate {
  try {
    return new X509Certificate(text);
  } catch {
    throw new ConfigError(`${name}: ${path} holds no PEM certificate`);
  }
}

/** The path in `name` if set; it must hold a PEM certificate (a CA bundle, say). */
export function envCertificateFile(env: NodeJS.ProcessEnv, name: string): string | undefined {
  if (!env[name]) {
    return undefined;
  }
  const { path, text } = pemFile(env, name);
  certificate(name, path, text);
  return path;
}

/**
 * A certificate and its private key (both or neither): PEM files that belong together, checked
 * at boot so that a mix-up fails naming the variable, not at the first handshake.
 */
export function envKeyPairFiles(
  env: NodeJS.ProcessEnv,
  certName: string,
  keyName: string,
): { certFile: string; keyFile: string } | undefined {
  if (Boolean(env[certName]) !== Boolean(env[keyName])) {
    throw new ConfigError(`${certName} and ${keyName} must be set together`);
  }
  if (!env[certName]) {
    return undefined;
  }
  const cert = pemFile(env, certName);
  const key = pemFile(env, keyName);
  const x509 = certificate(certName, cert.path, cert.text);
  let privateKey;
  try {
    privateKey = createPrivateKey(key.text);
  } catch {
    throw new ConfigError(`${keyName}: ${key.path} holds no PEM private key`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      `${keyName}: ${key.path} is not the key of the certificate in ${certName}`,
    );
  }
  return { certFile: cert.path, keyFile: key.path };
}

function envNatsTls(env: NodeJS.ProcessEnv, servers: string[]): NatsTlsEnv | undefined {
  const caFile = envCertificateFile(env, 'NATS_TLS_CA');
  const pair = envKeyPairFiles(env, 'NATS_TLS_CERT', 'NATS_TLS_KEY');
  if (caFile === undefined && pair === undefined && !servers.some((s) => /^tls:/.test(s))) {
    return undefined;
  }
  return { caFile, ...pair };
}

/** NATS rows of the configuration reference, the same for every tier. */
export const NATS_ENV_DOCS: Array<[name: string, fallback: string, meaning: string]> = [
  [
    'NATS_URL',
    'nats://127.0.0.1:4222',
    'NATS server URL(s), comma-separated; a tls:// URL requires TLS',
  ],
  ['NATS_USER / NATS_PASSWORD', '—', 'user/password credentials'],
  ['NATS_TOKEN', '—', 'token credentials'],
  ['NATS_CREDS_FILE', '—', 'a .creds file (JWT + nkey)'],
  [
    'NATS_TLS_CA',
    '—',
    'PEM CA file the server certificate must chain to; set, the connection must use TLS',
  ],
  [
    'NATS_TLS_CERT / NATS_TLS_KEY',
    '—',
    'PEM client certificate and key, for a server that verifies clients (TLS required)',
  ],
  [
    'NATS_PING_INTERVAL_MS',
    '2000',
    'how often the NATS server is pinged to find out it went silent',
  ],
  [
    'NATS_MAX_PINGS_OUT',
    '2',
    'unanswered pings after which the server counts as gone and another of the cluster is used',
  ],
];
