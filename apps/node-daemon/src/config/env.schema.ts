import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isSubjectToken } from '@lq/proto';
import { publicKeyFromBase64 } from '@lq/host';
import {
  ConfigError,
  NATS_ENV_DOCS,
  envInt as int,
  envList,
  envLogLevel,
  envNats,
  type LogLevelName,
  type NatsEnv,
} from '@lq/runtime';

export { ConfigError };

export interface NodeDaemonConfig {
  nodeId: string;
  nats: NatsEnv & {
    /** Give up after this many reconnect attempts; -1: never. */
    maxReconnectAttempts: number;
    reconnectTimeWaitMs: number;
  };
  channelDirs: string[];
  vmMapFile?: string;
  /** Where libvirt keeps the status XML of running domains (their UUIDs). */
  libvirtRunDir: string;
  rescanIntervalMs: number;
  heartbeatIntervalMs: number;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  agentSyncTimeoutMs: number;
  agentKeepaliveMs: number;
  agentReconnectMaxMs: number;
  fileChunkMaxBytes: number;
  /** Relayed results of retained operations kept for a request that comes again (ReplyCache). */
  replyRetentionMs: number;
  replyCacheBytes: number;
  /** Who may send guest requests: the control plane's public keys, and the checks' bounds. */
  signatures: {
    /** Raw Ed25519 public keys (base64) whose signatures are accepted. */
    trustedKeys: string[];
    clockSkewMs: number;
    replayCacheMax: number;
  };
  logLevel: LogLevelName;
}

/** Every variable the daemon reads, with its default and meaning (README's reference). */
export const ENV_VARIABLES: Array<[name: string, fallback: string, meaning: string]> = [
  ['LQ_NODE_ID', 'the hostname', 'this node’s id in NATS subjects (letters, digits, _ and -)'],
  ...NATS_ENV_DOCS,
  ['NATS_MAX_RECONNECT_ATTEMPTS', '-1', 'reconnect attempts before giving up; -1 never gives up'],
  ['NATS_RECONNECT_WAIT_MS', '1000', 'wait between reconnect attempts'],
  [
    'LQ_CHANNEL_DIRS',
    '/var/lib/libvirt/qemu/channel/target',
    'directories watched for VM channel sockets, comma-separated',
  ],
  [
    'LQ_LIBVIRT_RUN_DIR',
    '/run/libvirt/qemu',
    'libvirt’s status files of running domains (<name>.xml): where a domain’s UUID is read',
  ],
  [
    'LQ_VM_MAP_FILE',
    '—',
    'JSON object mapping socket paths, libvirt domain UUIDs or names to VM ids',
  ],
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
    'LQ_AGENT_KEEPALIVE_MS',
    '5000',
    'ping period while a request waits: finds an agent restarted behind an open channel (0: off)',
  ],
  [
    'LQ_FILE_CHUNK_MAX_BYTES',
    '524288',
    'largest file chunk relayed (also bounded by NATS max_payload)',
  ],
  [
    'LQ_REPLY_RETENTION_MS',
    '600000',
    'how long a relayed execution result is kept for its request id asked again (a replica adopting it); 0: off',
  ],
  [
    'LQ_REPLY_CACHE_BYTES',
    '67108864',
    'bytes of relayed results kept that way (the oldest go first)',
  ],
  [
    'LQ_CONTROL_PLANE_KEYS',
    '(required)',
    'the control plane’s Ed25519 public keys (base64, comma-separated; GET /api/signing-keys) whose signed requests are relayed; several during a rotation',
  ],
  [
    'LQ_CONTROL_PLANE_KEYS_FILE',
    '—',
    'a file of such keys, one per line (instead of LQ_CONTROL_PLANE_KEYS)',
  ],
  [
    'LQ_SIGNATURE_CLOCK_SKEW_MS',
    '5000',
    'how far this host’s clock may be behind the control plane’s when checking expiries',
  ],
  [
    'LQ_REPLAY_CACHE_MAX',
    '1000000',
    'signed requests remembered until they expire (a replay is refused); beyond it requests are refused',
  ],
  ['LQ_LOG_LEVEL', 'info', 'debug, info, warn or error'],
];

/** Reads and validates the environment once, at boot; fails naming the variable. */
export function parseNodeDaemonEnv(env: NodeJS.ProcessEnv): NodeDaemonConfig {
  const nodeId = env.LQ_NODE_ID || hostname().split('.')[0]!;
  if (!isSubjectToken(nodeId)) {
    throw new ConfigError(
      `LQ_NODE_ID must be 1-128 letters, digits, _ or - (got ${JSON.stringify(nodeId)})`,
    );
  }
  const nats = envNats(env);
  const channelDirs = envList(env, 'LQ_CHANNEL_DIRS', ['/var/lib/libvirt/qemu/channel/target']);
  for (const dir of channelDirs) {
    if (!dir.startsWith('/')) {
      throw new ConfigError(`LQ_CHANNEL_DIRS: ${JSON.stringify(dir)} must be an absolute path`);
    }
  }
  if (env.LQ_VM_MAP_FILE !== undefined && !env.LQ_VM_MAP_FILE.startsWith('/')) {
    throw new ConfigError('LQ_VM_MAP_FILE must be an absolute path');
  }
  const libvirtRunDir = env.LQ_LIBVIRT_RUN_DIR || '/run/libvirt/qemu';
  if (!libvirtRunDir.startsWith('/')) {
    throw new ConfigError('LQ_LIBVIRT_RUN_DIR must be an absolute path');
  }
  const logLevel = envLogLevel(env);
  const defaultTimeoutMs = int(env, 'LQ_DEFAULT_TIMEOUT_MS', 30_000, 100, 7 * 86_400_000);
  const maxTimeoutMs = int(env, 'LQ_MAX_TIMEOUT_MS', 86_400_000, 100, 7 * 86_400_000);
  if (defaultTimeoutMs > maxTimeoutMs) {
    throw new ConfigError('LQ_DEFAULT_TIMEOUT_MS must not exceed LQ_MAX_TIMEOUT_MS');
  }
  return {
    nodeId,
    nats: {
      ...nats,
      maxReconnectAttempts: int(env, 'NATS_MAX_RECONNECT_ATTEMPTS', -1, -1, 1_000_000),
      reconnectTimeWaitMs: int(env, 'NATS_RECONNECT_WAIT_MS', 1000, 10, 600_000),
    },
    channelDirs,
    vmMapFile: env.LQ_VM_MAP_FILE || undefined,
    libvirtRunDir,
    rescanIntervalMs: int(env, 'LQ_RESCAN_INTERVAL_MS', 2000, 100, 3_600_000),
    heartbeatIntervalMs: int(env, 'LQ_HEARTBEAT_INTERVAL_MS', 5000, 100, 3_600_000),
    defaultTimeoutMs,
    maxTimeoutMs,
    agentSyncTimeoutMs: int(env, 'LQ_AGENT_SYNC_TIMEOUT_MS', 1000, 50, 60_000),
    agentReconnectMaxMs: int(env, 'LQ_AGENT_RECONNECT_MAX_MS', 1000, 50, 60_000),
    agentKeepaliveMs: int(env, 'LQ_AGENT_KEEPALIVE_MS', 5000, 0, 3_600_000),
    fileChunkMaxBytes: int(env, 'LQ_FILE_CHUNK_MAX_BYTES', 512 * 1024, 1024, 64 * 1024 * 1024),
    replyRetentionMs: int(env, 'LQ_REPLY_RETENTION_MS', 600_000, 0, 86_400_000),
    replyCacheBytes: int(env, 'LQ_REPLY_CACHE_BYTES', 64 * 1024 * 1024, 0, 16 * 1024 * 1024 * 1024),
    signatures: {
      trustedKeys: trustedKeys(env),
      clockSkewMs: int(env, 'LQ_SIGNATURE_CLOCK_SKEW_MS', 5000, 0, 600_000),
      replayCacheMax: int(env, 'LQ_REPLAY_CACHE_MAX', 1_000_000, 1000, 100_000_000),
    },
    logLevel,
  };
}

/** The trusted control-plane keys, each checked to be an Ed25519 public key. */
function trustedKeys(env: NodeJS.ProcessEnv): string[] {
  let text = env.LQ_CONTROL_PLANE_KEYS;
  let name = 'LQ_CONTROL_PLANE_KEYS';
  if (env.LQ_CONTROL_PLANE_KEYS_FILE) {
    name = 'LQ_CONTROL_PLANE_KEYS_FILE';
    try {
      text = readFileSync(env.LQ_CONTROL_PLANE_KEYS_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`${name}: ${(err as Error).message}`);
    }
  }
  const keys = (text ?? '')
    .split(/[\s,]+/)
    .map((k) => k.trim())
    .filter((k) => k !== '' && !k.startsWith('#'));
  if (keys.length === 0) {
    throw new ConfigError(
      'LQ_CONTROL_PLANE_KEYS must name the control plane’s public key (GET /api/signing-keys, or its start-up log): without it no guest request is relayed',
    );
  }
  for (const k of keys) {
    try {
      publicKeyFromBase64(k);
    } catch (err) {
      throw new ConfigError(`${name}: ${(err as Error).message}`);
    }
  }
  return keys;
}

export const NODE_DAEMON_CONFIG = Symbol('NODE_DAEMON_CONFIG');
