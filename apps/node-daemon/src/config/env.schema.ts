import { hostname } from 'node:os';
import { isSubjectToken } from '@lq/proto';

export interface NodeDaemonConfig {
  nodeId: string;
  nats: {
    servers: string[];
    user?: string;
    pass?: string;
    token?: string;
    credsFile?: string;
    /** Give up after this many reconnect attempts; -1: never. */
    maxReconnectAttempts: number;
    reconnectTimeWaitMs: number;
  };
  channelDirs: string[];
  vmMapFile?: string;
  rescanIntervalMs: number;
  heartbeatIntervalMs: number;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  agentSyncTimeoutMs: number;
  agentReconnectMaxMs: number;
  fileChunkMaxBytes: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Every variable the daemon reads, with its default and meaning (README's reference). */
export const ENV_VARIABLES: Array<[name: string, fallback: string, meaning: string]> = [
  ['LQ_NODE_ID', 'the hostname', 'this node’s id in NATS subjects (letters, digits, _ and -)'],
  ['NATS_URL', 'nats://127.0.0.1:4222', 'NATS server URL(s), comma-separated'],
  ['NATS_USER / NATS_PASSWORD', '—', 'user/password credentials'],
  ['NATS_TOKEN', '—', 'token credentials'],
  ['NATS_CREDS_FILE', '—', 'a .creds file (JWT + nkey)'],
  ['NATS_MAX_RECONNECT_ATTEMPTS', '-1', 'reconnect attempts before giving up; -1 never gives up'],
  ['NATS_RECONNECT_WAIT_MS', '1000', 'wait between reconnect attempts'],
  [
    'LQ_CHANNEL_DIRS',
    '/var/lib/libvirt/qemu/channel/target',
    'directories watched for VM channel sockets, comma-separated',
  ],
  ['LQ_VM_MAP_FILE', '—', 'JSON object mapping socket paths or libvirt domain names to VM ids'],
  [
    'LQ_RESCAN_INTERVAL_MS',
    '2000',
    'full rescan period of the channel directories (besides inotify)',
  ],
  ['LQ_HEARTBEAT_INTERVAL_MS', '5000', 'heartbeat period (also sent on every agent state change)'],
  ['LQ_DEFAULT_TIMEOUT_MS', '30000', 'agent deadline when a request gives none'],
  ['LQ_MAX_TIMEOUT_MS', '86400000', 'largest deadline a request may ask for'],
  [
    'LQ_AGENT_SYNC_TIMEOUT_MS',
    '1000',
    'first wait for an agent’s handshake reply (then backs off)',
  ],
  ['LQ_AGENT_RECONNECT_MAX_MS', '1000', 'longest wait between reconnects to an agent channel'],
  [
    'LQ_FILE_CHUNK_MAX_BYTES',
    '524288',
    'largest file chunk relayed (also bounded by NATS max_payload)',
  ],
  ['LQ_LOG_LEVEL', 'info', 'debug, info, warn or error'],
];

function int(
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

function list(raw: string | undefined, fallback: string[]): string[] {
  if (raw === undefined || raw.trim() === '') {
    return fallback;
  }
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Reads and validates the environment once, at boot; fails naming the variable. */
export function parseNodeDaemonEnv(env: NodeJS.ProcessEnv): NodeDaemonConfig {
  const nodeId = env.LQ_NODE_ID || hostname().split('.')[0]!;
  if (!isSubjectToken(nodeId)) {
    throw new ConfigError(
      `LQ_NODE_ID must be 1-128 letters, digits, _ or - (got ${JSON.stringify(nodeId)})`,
    );
  }
  const servers = list(env.NATS_URL, ['nats://127.0.0.1:4222']);
  for (const s of servers) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(s) && !/^[\w.-]+:\d+$/.test(s)) {
      throw new ConfigError(`NATS_URL: ${JSON.stringify(s)} is not a NATS URL (nats://host:port)`);
    }
  }
  if ((env.NATS_USER === undefined) !== (env.NATS_PASSWORD === undefined)) {
    throw new ConfigError('NATS_USER and NATS_PASSWORD must be set together');
  }
  const channelDirs = list(env.LQ_CHANNEL_DIRS, ['/var/lib/libvirt/qemu/channel/target']);
  for (const dir of channelDirs) {
    if (!dir.startsWith('/')) {
      throw new ConfigError(`LQ_CHANNEL_DIRS: ${JSON.stringify(dir)} must be an absolute path`);
    }
  }
  if (env.LQ_VM_MAP_FILE !== undefined && !env.LQ_VM_MAP_FILE.startsWith('/')) {
    throw new ConfigError('LQ_VM_MAP_FILE must be an absolute path');
  }
  const logLevel = env.LQ_LOG_LEVEL ?? 'info';
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`LQ_LOG_LEVEL must be debug, info, warn or error (got ${logLevel})`);
  }
  const defaultTimeoutMs = int(env, 'LQ_DEFAULT_TIMEOUT_MS', 30_000, 100, 7 * 86_400_000);
  const maxTimeoutMs = int(env, 'LQ_MAX_TIMEOUT_MS', 86_400_000, 100, 7 * 86_400_000);
  if (defaultTimeoutMs > maxTimeoutMs) {
    throw new ConfigError('LQ_DEFAULT_TIMEOUT_MS must not exceed LQ_MAX_TIMEOUT_MS');
  }
  return {
    nodeId,
    nats: {
      servers,
      user: env.NATS_USER,
      pass: env.NATS_PASSWORD,
      token: env.NATS_TOKEN || undefined,
      credsFile: env.NATS_CREDS_FILE || undefined,
      maxReconnectAttempts: int(env, 'NATS_MAX_RECONNECT_ATTEMPTS', -1, -1, 1_000_000),
      reconnectTimeWaitMs: int(env, 'NATS_RECONNECT_WAIT_MS', 1000, 10, 600_000),
    },
    channelDirs,
    vmMapFile: env.LQ_VM_MAP_FILE || undefined,
    rescanIntervalMs: int(env, 'LQ_RESCAN_INTERVAL_MS', 2000, 100, 3_600_000),
    heartbeatIntervalMs: int(env, 'LQ_HEARTBEAT_INTERVAL_MS', 5000, 100, 3_600_000),
    defaultTimeoutMs,
    maxTimeoutMs,
    agentSyncTimeoutMs: int(env, 'LQ_AGENT_SYNC_TIMEOUT_MS', 1000, 50, 60_000),
    agentReconnectMaxMs: int(env, 'LQ_AGENT_RECONNECT_MAX_MS', 1000, 50, 60_000),
    fileChunkMaxBytes: int(env, 'LQ_FILE_CHUNK_MAX_BYTES', 512 * 1024, 1024, 64 * 1024 * 1024),
    logLevel: logLevel as NodeDaemonConfig['logLevel'],
  };
}

export const NODE_DAEMON_CONFIG = Symbol('NODE_DAEMON_CONFIG');
