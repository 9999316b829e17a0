import {
  ConfigError,
  NATS_ENV_DOCS,
  envBool as bool,
  envInt as int,
  envLogLevel,
  envNats,
  type LogLevelName,
  type NatsEnv,
} from '@lq/runtime';

export { ConfigError };

export interface ControlPlaneConfig {
  databaseUrl: string;
  runMigrations: boolean;
  nats: NatsEnv & {
    /** Queue group shared by replicas for inventory subscriptions. */
    queueGroup: string;
  };
  http: { host: string; port: number };
  grpc: { host: string; port: number };
  /** Default and maximum guest operation timeouts. */
  guestTimeoutSeconds: number;
  guestTimeoutMaxSeconds: number;
  /** Extra time the control plane waits beyond an operation's own timeout. */
  natsSlackMs: number;
  /** A node whose heartbeat is older than this is reported stale. */
  nodeStaleMs: number;
  limits: {
    maxCommandBytes: number;
    maxEnvBytes: number;
    maxStdinBytes: number;
    maxPathBytes: number;
    maxUploadBytes: number;
  };
  logLevel: LogLevelName;
}

/** Every variable the control plane reads (the README's configuration reference). */
export const CONTROL_PLANE_ENV: Array<[name: string, fallback: string, meaning: string]> = [
  ['DATABASE_URL', '(required)', 'PostgreSQL URL, postgres://user:pass@host:port/db'],
  [
    'LQ_RUN_MIGRATIONS',
    'true',
    'apply pending migrations at start (false when a one-shot job does it)',
  ],
  ...NATS_ENV_DOCS,
  ['LQ_NATS_QUEUE_GROUP', 'lq-control-plane', 'queue group replicas share for inventory updates'],
  ['LQ_HTTP_HOST / LQ_HTTP_PORT', '0.0.0.0 / 8080', 'REST, Connect JSON, docs, health, metrics'],
  ['LQ_GRPC_HOST / LQ_GRPC_PORT', '0.0.0.0 / 9090', 'gRPC (HTTP/2, cleartext)'],
  ['LQ_GUEST_TIMEOUT_SECONDS', '30', 'guest operation timeout when a request gives none'],
  ['LQ_GUEST_TIMEOUT_MAX_SECONDS', '3600', 'largest timeout a request may ask for'],
  [
    'LQ_NATS_SLACK_MS',
    '2000',
    'extra wait beyond an operation’s timeout before a node counts as not answering',
  ],
  ['LQ_NODE_STALE_MS', '15000', 'heartbeat age after which a node is reported stale'],
  ['LQ_MAX_COMMAND_BYTES', '65536', 'largest command line or argv in total'],
  ['LQ_MAX_ENV_BYTES', '65536', 'largest environment in total'],
  ['LQ_MAX_STDIN_BYTES', '1048576', 'largest stdin'],
  ['LQ_MAX_PATH_BYTES', '4096', 'longest guest path'],
  ['LQ_MAX_UPLOAD_BYTES', '17179869184', 'largest file accepted by PUT /api/vms/:id/files'],
  ['LQ_LOG_LEVEL', 'info', 'debug, info, warn or error'],
];

/** Reads and validates the environment once, at boot; fails naming the variable. */
export function parseControlPlaneEnv(env: NodeJS.ProcessEnv): ControlPlaneConfig {
  const databaseUrl = env.DATABASE_URL ?? '';
  if (!/^postgres(ql)?:\/\/.+/.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be set to a postgres:// URL');
  }
  const nats = envNats(env);
  const logLevel = envLogLevel(env);
  const guestTimeoutSeconds = int(env, 'LQ_GUEST_TIMEOUT_SECONDS', 30, 1, 86_400);
  const guestTimeoutMaxSeconds = int(env, 'LQ_GUEST_TIMEOUT_MAX_SECONDS', 3600, 1, 86_400);
  if (guestTimeoutSeconds > guestTimeoutMaxSeconds) {
    throw new ConfigError('LQ_GUEST_TIMEOUT_SECONDS must not exceed LQ_GUEST_TIMEOUT_MAX_SECONDS');
  }
  return {
    databaseUrl,
    runMigrations: bool(env, 'LQ_RUN_MIGRATIONS', true),
    nats: {
      ...nats,
      queueGroup: env.LQ_NATS_QUEUE_GROUP || 'lq-control-plane',
    },
    http: { host: env.LQ_HTTP_HOST || '0.0.0.0', port: int(env, 'LQ_HTTP_PORT', 8080, 0, 65_535) },
    grpc: { host: env.LQ_GRPC_HOST || '0.0.0.0', port: int(env, 'LQ_GRPC_PORT', 9090, 0, 65_535) },
    guestTimeoutSeconds,
    guestTimeoutMaxSeconds,
    natsSlackMs: int(env, 'LQ_NATS_SLACK_MS', 2000, 0, 600_000),
    nodeStaleMs: int(env, 'LQ_NODE_STALE_MS', 15_000, 100, 86_400_000),
    limits: {
      maxCommandBytes: int(env, 'LQ_MAX_COMMAND_BYTES', 65_536, 1, 16 * 1024 * 1024),
      maxEnvBytes: int(env, 'LQ_MAX_ENV_BYTES', 65_536, 0, 16 * 1024 * 1024),
      maxStdinBytes: int(env, 'LQ_MAX_STDIN_BYTES', 1024 * 1024, 0, 64 * 1024 * 1024),
      maxPathBytes: int(env, 'LQ_MAX_PATH_BYTES', 4096, 1, 65_536),
      maxUploadBytes: int(env, 'LQ_MAX_UPLOAD_BYTES', 16 * 1024 ** 3, 0, Number.MAX_SAFE_INTEGER),
    },
    logLevel,
  };
}

export const CONTROL_PLANE_CONFIG = Symbol('CONTROL_PLANE_CONFIG');
