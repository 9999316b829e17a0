import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import {
  ConfigError,
  NATS_ENV_DOCS,
  envBool as bool,
  envCertificateFile,
  envKeyPairFiles,
  envInt as int,
  envLogLevel,
  envNats,
  type LogLevelName,
  type NatsEnv,
} from '@lq/runtime';
import type { SignInLimits } from '@lq/auth';
import { parseOutputPatterns } from '@lq/audit';
import { signingKeyFromPem } from '@lq/host';

export { ConfigError };

/**
 * TLS of the PostgreSQL connections, as node-postgres takes it (`ssl`): undefined leaves it to
 * DATABASE_URL (its sslmode) and node-postgres's defaults.
 */
export type DatabaseTls =
  false | (TlsOptions & Pick<ConnectionOptions, 'checkServerIdentity'>) | undefined;

export const DATABASE_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

export interface ControlPlaneConfig {
  databaseUrl: string;
  databaseTls: DatabaseTls;
  /**
   * The owner role's URL migrations run through (DATABASE_MIGRATION_URL); undefined: migrations
   * run through DATABASE_URL, whose role then owns the tables.
   */
  databaseMigrationUrl?: string;
  /** Refuse to start when DATABASE_URL's role could change or delete audit rows. */
  databaseRequireLeastPrivilege: boolean;
  /** PostgreSQL connections per replica, and how long a query waits for one before failing. */
  databasePool: { max: number; waitMs: number };
  runMigrations: boolean;
  nats: NatsEnv & {
    /** Queue group shared by replicas for inventory subscriptions. */
    queueGroup: string;
  };
  /** keepAliveMs: how long an idle keep-alive connection is kept open. */
  http: { host: string; port: number; keepAliveMs: number };
  /** Express's `trust proxy`: whose X-Forwarded-For gives the client address (audit source_ip). */
  trustProxy: string | false;
  grpc: { host: string; port: number };
  /** Default and maximum guest operation timeouts. */
  guestTimeoutSeconds: number;
  guestTimeoutMaxSeconds: number;
  /** Extra time the control plane waits beyond an operation's own timeout. */
  natsSlackMs: number;
  /** A node whose heartbeat is older than this is reported stale. */
  nodeStaleMs: number;
  /**
   * A VM whose owner node has sent no heartbeat for this long may be claimed by another node
   * without an admin's move; 0: never.
   */
  vmAdoptAfterMs: number;
  /** A refused claim (same VM, same node) is logged and audited again after this long. */
  claimReportIntervalMs: number;
  /** How long a VM's node and project are remembered between guest operations. */
  locationCacheMs: number;
  /** How long an execution waits for its agent to come back before it is agent_lost. */
  execLostGraceMs: number;
  /** How long a cancel keeps asking an agent that does not know the execution yet. */
  execCancelRetryMs: number;
  /**
   * An execution's or run's lease: its replica renews it every third of this; once it has run
   * out (the replica died) another replica adopts the execution or run.
   */
  leaseMs: number;
  /** Timeout of an asynchronous execution (and a run's) that gives none. */
  execAsyncTimeoutSeconds: number;
  /** Fleet runs: largest number of VMs per run. */
  runMaxVms: number;
  /** Fleet runs: starts in progress at once per replica, whatever the runs' max_concurrency. */
  runStartsInFlight: number;
  /** Fleet runs: how long a start that failed for want of the store is tried again. */
  runStartRetryMs: number;
  /** Execution and run-target rows per statement when a burst of them is written together. */
  execBatchRows: number;
  /** Largest page of GET /api/executions and /api/runs. */
  historyPageMax: number;
  /** Replies, stored output and its followers: every size and count bounded. */
  output: {
    /** Largest reply reassembled from parts (PROTOCOL.md §9 Reply parts). */
    replyMaxBytes: number;
    /** Longest wait for a reply's next part. */
    replyPartStallMs: number;
    /** Output stored per asynchronous execution; past it, the row is flagged output_truncated. */
    execStoredMaxBytes: number;
    /** Output of one execution held in memory while the database does not take it. */
    execBufferMaxBytes: number;
    /** Open output streams (SSE and gRPC) per replica; one more is refused (503). */
    followersMax: number;
    /** Live chunks one follower holds ahead of a gap before it reads the store instead. */
    followHeldMax: number;
    /** Unsent bytes a follower's client may lag by before the follower waits for it. */
    followBufferBytes: number;
    /** How long a cancel waits for the agent's answer before it ends the execution itself. */
    cancelSettleMs: number;
  };
  limits: {
    maxCommandBytes: number;
    maxEnvBytes: number;
    maxStdinBytes: number;
    maxPathBytes: number;
    maxUploadBytes: number;
  };
  auth: {
    adminToken?: string;
    jwtSecret?: string;
    accessTokenTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    cacheSeconds: number;
    scryptLogN: number;
    signIn: SignInLimits;
  };
  /** How guest requests are signed for the node daemons (PROTOCOL.md §9). */
  signing: { keyFile?: string; requestTtlSeconds: number };
  /** Folders served as files: unset, the nearest dist/console or dist/packages above the module. */
  files: { consoleDir?: string; agentDownloadsDir?: string };
  /** Agent self-updates and rollouts (issue 19). */
  agentUpdates: {
    /** Release public keys (base64 raw Ed25519) releases are checked against; []: not checked here. */
    releaseKeys: string[];
    /** Waited beyond the agent's own ready deadline for its answer after a swap. */
    readyGraceMs: number;
    /** Between status questions to an agent that is restarting. */
    pollMs: number;
    /** How long one chunk of the executable may wait for the agent's answer. */
    chunkTimeoutMs: number;
    /** How long the commit (the agent hashes, verifies and swaps) may wait for its answer. */
    commitTimeoutMs: number;
    /** Largest file `lqctl agent release import` may upload. */
    releaseMaxBytes: number;
    /** Largest number of VMs one rollout may target. */
    rolloutMaxVms: number;
    /**
     * How long a replica's claim on driving a rollout lasts unless renewed (every third of it);
     * past it another replica takes the rollout over and resumes it.
     */
    rolloutLeaseMs: number;
  };
  /** Failed authentications written to the audit trail (the rest are counted, not written). */
  authFailureAudit: { perAddressPerMinute: number; perMinute: number };
  audit: {
    batchMax: number;
    writeTimeoutMs: number;
    pendingMax: number;
    retryMs: number;
    outcomeWaitMs: number;
    /** Rows that must not be lost, spooled here (fsync'd) while the database is down. */
    spoolDir: string;
    spoolMaxBytes: number;
    outputMaxBytes: number;
    pageMax: number;
    exportMaxRows: number;
    /** Applied to output before it is stored or streamed to a follower (issue 18 item 2). */
    outputRedaction: {
      defaults: boolean;
      patterns: RegExp[];
      /** Longest unfinished line of async output held back for the patterns (StreamRedactor). */
      holdBytes: number;
    };
  };
  /** Signed checkpoints of the audit chain head (SECURITY.md: the audit trail). */
  auditCheckpoint: AuditCheckpointConfig;
  /** Where asynchronous executions' output waits for the replica that stores it. */
  execOutputStream: ExecOutputStreamConfig;
  /** Telemetry history (the fleet dashboard, GET /api/vms/:id/telemetry). */
  telemetry: TelemetryHistoryConfig;
  logLevel: LogLevelName;
}

/** One resolution of the telemetry history: points `stepSeconds` wide, kept `retentionSeconds`. */
export interface TelemetryTier {
  stepSeconds: number;
  retentionSeconds: number;
}

export interface TelemetryHistoryConfig {
  /** Short steps kept briefly (default 1-minute points for 24 h). */
  fine: TelemetryTier;
  /** Long steps kept long (default 15-minute points for 30 days). */
  coarse: TelemetryTier;
  /** How often buffered reports are written, as one batched upsert per tier. */
  flushMs: number;
  /** Points (VM × step) held in memory awaiting a flush; reports beyond it are dropped (counted). */
  bufferMax: number;
  /** Rows per INSERT statement of a flush. */
  batchRows: number;
  /** How often expired points are deleted, and how many per DELETE (a run stops after 100). */
  pruneIntervalMs: number;
  pruneBatch: number;
  /** Largest window GET /api/vms/:id/telemetry answers. */
  queryMaxWindowSeconds: number;
  /** Largest `top` of GET /api/fleet/summary, and of its list of full disks. */
  summaryTopMax: number;
  /** VMs whose guest gauges /metrics exports (the rest are left out, counted). */
  metricsVmMax: number;
}

export const AUDIT_CHECKPOINT_JETSTREAM_MODES = ['required', 'optional', 'off'] as const;

export interface AuditCheckpointConfig {
  /** A checkpoint once the head is this many rows past the last one. */
  rows: number;
  /** And at least this often while rows are written. */
  intervalMs: number;
  /** required: no JetStream stream, no start; optional: table only while it is away; off. */
  jetstream: (typeof AUDIT_CHECKPOINT_JETSTREAM_MODES)[number];
  stream: string;
  subject: string;
  /** Replicas of the stream (a NATS cluster: 3). */
  streamReplicas: number;
  /** Messages the stream keeps (the oldest go first; the latest is what verify reads). */
  streamMaxMsgs: number;
  /** JetStream API and publish timeout. */
  timeoutMs: number;
}

export const EXEC_OUTPUT_JETSTREAM_MODES = ['required', 'optional', 'off'] as const;

/**
 * Output of asynchronous executions travels node daemon → NATS → the replica driving it. Over
 * NATS core a replica that falls behind (a 50 MB burst on a busy machine) is cut off as a slow
 * consumer and the output is lost; a JetStream stream keeps it until the replica has read it,
 * at the replica's pace (issue 18 item 6).
 */
export interface ExecOutputStreamConfig {
  /** required: no stream, no start; optional: NATS core while JetStream is away; off: core. */
  jetstream: (typeof EXEC_OUTPUT_JETSTREAM_MODES)[number];
  stream: string;
  streamReplicas: number;
  /** What the stream holds in all (the oldest output goes first, flagged as lost). */
  maxBytes: number;
  /** How long output stays in the stream. */
  maxAgeSeconds: number;
  /** After the agent's answer, how long the replica waits for output still on its way. */
  drainMs: number;
  /** JetStream API timeout. */
  timeoutMs: number;
}

/** Every variable the control plane reads (the README's configuration reference). */
export const CONTROL_PLANE_ENV: Array<[name: string, fallback: string, meaning: string]> = [
  ['DATABASE_URL', '(required)', 'PostgreSQL URL, postgres://user:pass@host:port/db'],
  [
    'DATABASE_SSL_MODE',
    '(from DATABASE_URL)',
    'TLS to PostgreSQL: disable, require (encrypted, unverified), verify-ca, verify-full (CA and host name)',
  ],
  [
    'DATABASE_SSL_CA',
    '(system CAs)',
    'PEM CA file PostgreSQL’s certificate must chain to (verify-ca, verify-full)',
  ],
  [
    'DATABASE_SSL_CERT / DATABASE_SSL_KEY',
    '—',
    'PEM client certificate and key, for a PostgreSQL that asks for one (clientcert)',
  ],
  [
    'DATABASE_MIGRATION_URL',
    '(DATABASE_URL)',
    'the owner role migrations run as; DATABASE_URL’s role is then granted only what replicas need (INSERT and SELECT on the audit tables)',
  ],
  [
    'LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE',
    'false',
    'refuse to start when DATABASE_URL’s role is a superuser, owns the audit tables or may update, delete or truncate them (false: a warning)',
  ],
  [
    'LQ_DATABASE_POOL_MAX',
    '20',
    'PostgreSQL connections per replica (keep replicas × this below the server’s max_connections)',
  ],
  [
    'LQ_DATABASE_POOL_WAIT_MS',
    '10000',
    'how long a query waits for a free connection before it fails (work beyond the pool waits its turn)',
  ],
  [
    'LQ_RUN_MIGRATIONS',
    'true',
    'apply pending migrations at start (false when a one-shot job does it)',
  ],
  ...NATS_ENV_DOCS,
  ['LQ_NATS_QUEUE_GROUP', 'lq-control-plane', 'queue group replicas share for inventory updates'],
  ['LQ_HTTP_HOST / LQ_HTTP_PORT', '0.0.0.0 / 8080', 'REST, Connect JSON, docs, health, metrics'],
  [
    'LQ_HTTP_KEEP_ALIVE_TIMEOUT_MS',
    '65000',
    'how long an idle keep-alive HTTP connection stays open: longer than a load balancer’s idle timeout (60 s is common), so the control plane never closes a connection a client is about to reuse',
  ],
  ['LQ_GRPC_HOST / LQ_GRPC_PORT', '0.0.0.0 / 9090', 'gRPC (HTTP/2, cleartext)'],
  [
    'LQ_TRUST_PROXY',
    '(off)',
    'proxies whose X-Forwarded-For names the client (audit source_ip): loopback, uniquelocal, CIDRs, comma-separated',
  ],
  [
    'LQ_GUEST_TIMEOUT_SECONDS',
    '30',
    'timeout of a synchronous guest operation (POST /execute, lqctl exec --sync) that gives none',
  ],
  [
    'LQ_GUEST_TIMEOUT_MAX_SECONDS',
    '3600',
    'largest timeout any request may ask for, synchronous or not (lqctl --timeout too)',
  ],
  [
    'LQ_NATS_SLACK_MS',
    '2000',
    'extra wait beyond an operation’s timeout before a node counts as not answering',
  ],
  ['LQ_NODE_STALE_MS', '15000', 'heartbeat age after which a node is reported stale'],
  [
    'LQ_VM_ADOPT_AFTER_MS',
    '0',
    'another node may claim a VM whose node has been silent this long, with no admin move (0: never)',
  ],
  [
    'LQ_CLAIM_REPORT_INTERVAL_MS',
    '600000',
    'a node’s refused claim on a VM is logged and audited once per interval (each is counted)',
  ],
  [
    'LQ_LOCATION_CACHE_MS',
    '1000',
    'how long a replica remembers a VM’s node and project between operations (0: ask the database each time)',
  ],
  [
    'LQ_EXEC_LOST_GRACE_MS',
    '15000',
    'how long an asynchronous execution waits for its agent to reconnect before it is agent_lost',
  ],
  [
    'LQ_LEASE_MS',
    '15000',
    'lease of an asynchronous execution or fleet run, renewed every third of it; once it runs out (its replica died) another replica adopts it',
  ],
  [
    'LQ_EXEC_CANCEL_RETRY_MS',
    '5000',
    'how long a cancel keeps asking an agent that has not started the execution yet (a cancel right after the start)',
  ],
  ['LQ_RUN_MAX_VMS', '10000', 'largest number of VMs one fleet run may target'],
  [
    'LQ_RUN_STARTS_IN_FLIGHT',
    '16',
    'fleet-run starts in progress at once per replica (the rest wait their turn, whatever max_concurrency)',
  ],
  [
    'LQ_EXEC_BATCH_ROWS',
    '256',
    'execution and run-target rows per statement when many are written at once (a fleet run’s starts and ends); a row alone is written at once',
  ],
  [
    'LQ_RUN_START_RETRY_MS',
    '120000',
    'how long a run retries a VM’s start that failed for want of the database or audit trail (never an error)',
  ],
  [
    'LQ_EXEC_ASYNC_TIMEOUT_SECONDS',
    '3600',
    'timeout of an asynchronous execution or fleet run that gives none (at most LQ_GUEST_TIMEOUT_MAX_SECONDS)',
  ],
  [
    'LQ_GUEST_REPLY_MAX_BYTES',
    '41943040',
    'largest node reply taken, reassembled from parts when over NATS max_payload (40 MiB: two 16 MiB streams and the envelope)',
  ],
  [
    'LQ_GUEST_REPLY_PART_STALL_MS',
    '10000',
    'a reply in parts whose next part has not come in this time fails (502, REPLY_REFUSED)',
  ],
  [
    'LQ_EXEC_OUTPUT_MAX_BYTES',
    '268435456',
    'output stored per asynchronous execution (execution_output); past it the execution says output_truncated',
  ],
  [
    'LQ_EXEC_OUTPUT_BUFFER_BYTES',
    '16777216',
    'output of one execution held in memory until PostgreSQL takes it; past it the replica reads on only as the database takes it (the rest waits in the JetStream stream), or, without the stream, cuts it (output_truncated)',
  ],
  [
    'LQ_EXEC_FOLLOWERS_MAX',
    '500',
    'open execution output streams (SSE, gRPC) per replica; one more is refused with 503',
  ],
  [
    'LQ_EXEC_FOLLOW_HELD_MAX',
    '256',
    'live chunks a follower holds ahead of a gap before it reads them from the store instead',
  ],
  [
    'LQ_EXEC_FOLLOW_BUFFER_BYTES',
    '4194304',
    'bytes a follower’s client may lag by; past it the follower waits (back-pressure) and catches up from the store',
  ],
  [
    'LQ_EXEC_CANCEL_SETTLE_MS',
    '5000',
    'how long a cancel waits for the agent’s answer before it ends the execution itself (cancelled, outcome written)',
  ],
  ['LQ_MAX_COMMAND_BYTES', '65536', 'largest command line or argv in total'],
  ['LQ_MAX_ENV_BYTES', '65536', 'largest environment in total'],
  ['LQ_MAX_STDIN_BYTES', '1048576', 'largest stdin'],
  ['LQ_MAX_PATH_BYTES', '4096', 'longest guest path'],
  ['LQ_MAX_UPLOAD_BYTES', '17179869184', 'largest file accepted by PUT /api/vms/:id/files'],
  [
    'LQ_ADMIN_TOKEN',
    '(generated)',
    'the bootstrap admin’s API key, lq_<8 a-z0-9>_<32+ A-Za-z0-9>; unset: generated at first start and printed once',
  ],
  [
    'LQ_JWT_SECRET',
    '(generated)',
    'HS256 secret of access tokens, 32+ characters; unset: generated once and shared by replicas through the database',
  ],
  ['LQ_ACCESS_TOKEN_TTL_SECONDS', '900', 'lifetime of an access token'],
  ['LQ_REFRESH_TOKEN_TTL_SECONDS', '604800', 'lifetime of a refresh token (each is used once)'],
  [
    'LQ_AUTH_CACHE_SECONDS',
    '2',
    'how long a replica remembers an authenticated key or user (a revocation elsewhere takes this long)',
  ],
  ['LQ_PASSWORD_SCRYPT_LOG_N', '15', 'scrypt cost of new password hashes (2^N × 1 KiB of memory)'],
  [
    'LQ_SIGNING_KEY_FILE',
    '(generated)',
    'PEM (PKCS#8) Ed25519 key guest requests are signed with, the same for every replica; unset: generated once and kept in the database',
  ],
  [
    'LQ_REQUEST_SIGNATURE_TTL_SECONDS',
    '30',
    'how long a node daemon accepts a signed guest request after it was signed',
  ],
  ['LQ_CONSOLE_DIR', '(dist/console)', 'the built web console served at /'],
  [
    'LQ_AGENT_DOWNLOADS_DIR',
    '(dist/packages)',
    'agent releases served at /downloads/agent: a release folder or one per version',
  ],
  [
    'LQ_AGENT_RELEASE_KEYS',
    '(none)',
    'release public keys (base64 Ed25519, comma-separated) agent releases must be signed by to be offered; unset, the control plane does not check signatures (the agents do)',
  ],
  [
    'LQ_AGENT_UPDATE_READY_GRACE_MS',
    '30000',
    'how long past the agent’s own ready deadline an update waits for the agent to answer',
  ],
  ['LQ_AGENT_UPDATE_POLL_MS', '1000', 'between status questions to an agent that is restarting'],
  [
    'LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS',
    '30000',
    'how long one chunk of an update’s executable waits for the agent’s answer before the update fails',
  ],
  [
    'LQ_AGENT_UPDATE_COMMIT_TIMEOUT_MS',
    '120000',
    'how long an update’s commit (the agent verifies the executable and swaps it in) waits for its answer',
  ],
  ['LQ_AGENT_RELEASE_MAX_BYTES', '536870912', 'largest file of an imported agent release'],
  ['LQ_AGENT_ROLLOUT_MAX_VMS', '10000', 'largest number of VMs one agent rollout may target'],
  [
    'LQ_AGENT_ROLLOUT_LEASE_MS',
    '30000',
    'how long a replica’s claim on driving an agent rollout lasts unless renewed; past it another replica resumes the rollout',
  ],
  [
    'LQ_SIGNIN_MAX_FAILURES_PER_USER',
    '20',
    'failed sign-ins for one username within the window; more are refused with 429 unchecked',
  ],
  [
    'LQ_SIGNIN_MAX_FAILURES_PER_ADDRESS',
    '100',
    'failed sign-ins from one source address within the window (429 beyond)',
  ],
  [
    'LQ_SIGNIN_FAILURE_WINDOW_SECONDS',
    '60',
    'the window of the sign-in limits (shared by replicas through the database)',
  ],
  [
    'LQ_AUDIT_AUTH_FAILURES_PER_ADDRESS',
    '10',
    'failed authentications from one address written to the audit trail per minute (then one summary row)',
  ],
  [
    'LQ_AUDIT_AUTH_FAILURES_PER_MINUTE',
    '100',
    'failed authentications written to the audit trail per minute from all addresses together',
  ],
  ['LQ_AUDIT_BATCH_MAX', '256', 'audit rows per transaction of the ordered writer'],
  [
    'LQ_AUDIT_WRITE_TIMEOUT_MS',
    '3000',
    'an intent not written in this time refuses its operation (503)',
  ],
  [
    'LQ_AUDIT_PENDING_MAX',
    '100000',
    'outcome rows kept in memory for retry while PostgreSQL is away',
  ],
  ['LQ_AUDIT_RETRY_MS', '1000', 'between retries of audit rows that failed to write'],
  [
    'LQ_AUDIT_OUTCOME_WAIT_MS',
    '2000',
    'how long a response waits for its outcome row before that write goes on in the background',
  ],
  [
    'LQ_AUDIT_OUTPUT_MAX_BYTES',
    '65536',
    'stdout and stderr kept per execution in the command history (each; the hash covers all)',
  ],
  [
    'LQ_AUDIT_SPOOL_DIR',
    '(temp, per replica)',
    'where outcome rows are spooled (fsync’d, replayed in order) while PostgreSQL is down; persistent and one per replica (npm start, deploy/ and the systemd unit set one; start-up warns when it is under the temp dir)',
  ],
  [
    'LQ_AUDIT_SPOOL_MAX_BYTES',
    '268435456',
    'largest spool (past it rows wait in memory); 0: no spool',
  ],
  ['LQ_HISTORY_PAGE_MAX', '500', 'largest page of GET /api/executions and /api/runs'],
  ['LQ_AUDIT_PAGE_MAX', '1000', 'largest page of /api/audit/events and /executions'],
  ['LQ_AUDIT_EXPORT_MAX_ROWS', '1000000', 'largest NDJSON or CSV export'],
  [
    'LQ_OUTPUT_REDACT_DEFAULTS',
    'true',
    'redact the built-in patterns (private key blocks, password=/passwd:-style values, bearer and API tokens, AWS keys) from output before it is stored or streamed to a follower',
  ],
  [
    'LQ_OUTPUT_REDACT_PATTERNS',
    '[]',
    'more patterns to redact: a JSON array of regular expressions, each "source" or "/source/flags" (flags of imsu); the whole match becomes [redacted]',
  ],
  [
    'LQ_OUTPUT_REDACT_HOLD_BYTES',
    '4096',
    'longest unfinished line of an async execution’s output held back until its end comes, so the patterns see it whole (a secret cut between two chunks is still matched)',
  ],
  [
    'LQ_AUDIT_CHECKPOINT_ROWS',
    '1000',
    'sign a checkpoint of the audit chain head once it is this many rows past the last one',
  ],
  [
    'LQ_AUDIT_CHECKPOINT_INTERVAL_MS',
    '60000',
    'and at least this often while audit rows are written',
  ],
  [
    'LQ_AUDIT_CHECKPOINT_JETSTREAM',
    'optional',
    'required (refuse to start without the JetStream stream), optional (the checkpoint table alone while JetStream is away) or off',
  ],
  [
    'LQ_AUDIT_CHECKPOINT_STREAM',
    'LQ_AUDIT_CHECKPOINTS',
    'JetStream stream of checkpoints (created with deny_delete and deny_purge when missing)',
  ],
  [
    'LQ_AUDIT_CHECKPOINT_SUBJECT',
    'lq.v1.audit.checkpoints',
    'subject checkpoints are published on (the control plane’s NATS user may publish it)',
  ],
  ['LQ_AUDIT_CHECKPOINT_STREAM_REPLICAS', '1', 'replicas of the stream (3 in a NATS cluster)'],
  [
    'LQ_AUDIT_CHECKPOINT_STREAM_MAX_MSGS',
    '1000000',
    'checkpoints the stream keeps (the oldest go first; verify reads the latest)',
  ],
  ['LQ_AUDIT_CHECKPOINT_TIMEOUT_MS', '5000', 'JetStream request and publish timeout'],
  [
    'LQ_EXEC_OUTPUT_JETSTREAM',
    'optional',
    'output of asynchronous executions through a JetStream stream, read at the replica’s pace: required (refuse to start without it), optional (NATS core, which drops output for a replica that falls behind, while JetStream is away) or off',
  ],
  [
    'LQ_EXEC_OUTPUT_STREAM',
    'LQ_EXEC_OUTPUT',
    'JetStream stream of execution output (created when missing; subjects lq.v1.node.*.exec.*.output)',
  ],
  ['LQ_EXEC_OUTPUT_STREAM_REPLICAS', '1', 'replicas of the stream (3 in a NATS cluster)'],
  [
    'LQ_EXEC_OUTPUT_STREAM_MAX_BYTES',
    '1073741824',
    'bytes the output stream holds (the oldest go first; an execution missing some is flagged output_truncated)',
  ],
  ['LQ_EXEC_OUTPUT_STREAM_MAX_AGE_S', '3600', 'seconds output stays in the stream'],
  ['LQ_EXEC_OUTPUT_STREAM_TIMEOUT_MS', '5000', 'JetStream API timeout of the output stream'],
  [
    'LQ_EXEC_OUTPUT_DRAIN_MS',
    '30000',
    'after the agent’s answer, how long a replica waits with no output arriving, when some is still on its way, before it flags the rest as lost',
  ],
  [
    'LQ_TELEMETRY_FINE_STEP_SECONDS',
    '60',
    'width of a point of the short-term telemetry history (GET /api/vms/:id/telemetry, the dashboard)',
  ],
  [
    'LQ_TELEMETRY_FINE_RETENTION_HOURS',
    '24',
    'how long short-term points are kept (windows within it are answered at this resolution)',
  ],
  ['LQ_TELEMETRY_COARSE_STEP_SECONDS', '900', 'width of a point of the long-term history'],
  ['LQ_TELEMETRY_COARSE_RETENTION_DAYS', '30', 'how long long-term points are kept'],
  [
    'LQ_TELEMETRY_FLUSH_MS',
    '5000',
    'how often buffered telemetry reports are written (one batched upsert per resolution)',
  ],
  [
    'LQ_TELEMETRY_BUFFER_MAX',
    '50000',
    'points (VM × step) held in memory between writes; reports past it are dropped and counted (lq_telemetry_reports_total{outcome="dropped"})',
  ],
  ['LQ_TELEMETRY_BATCH_ROWS', '1000', 'rows per INSERT of a telemetry write'],
  ['LQ_TELEMETRY_PRUNE_INTERVAL_MS', '60000', 'how often expired telemetry points are deleted'],
  [
    'LQ_TELEMETRY_PRUNE_BATCH',
    '5000',
    'rows per DELETE of the pruning (at most 100 DELETEs per run, so a backlog is spread out)',
  ],
  [
    'LQ_TELEMETRY_QUERY_MAX_DAYS',
    '(LQ_TELEMETRY_COARSE_RETENTION_DAYS)',
    'largest window (to − from) of GET /api/vms/:id/telemetry',
  ],
  [
    'LQ_FLEET_SUMMARY_TOP_MAX',
    '100',
    'largest `top` of GET /api/fleet/summary (and of its list of VMs with full disks)',
  ],
  [
    'LQ_METRICS_VM_MAX',
    '10000',
    'VMs whose guest gauges (lq_vm_guest_*) /metrics exports, busiest first; the rest are left out',
  ],
  ['LQ_LOG_LEVEL', 'info', 'debug, info, warn or error'],
];

/** LQ_TELEMETRY_*: the two resolutions of the history and the bounds of its writes and reads. */
export function telemetryHistory(env: NodeJS.ProcessEnv): TelemetryHistoryConfig {
  const fine = {
    stepSeconds: int(env, 'LQ_TELEMETRY_FINE_STEP_SECONDS', 60, 10, 3600),
    retentionSeconds: int(env, 'LQ_TELEMETRY_FINE_RETENTION_HOURS', 24, 1, 24 * 31) * 3600,
  };
  const coarse = {
    stepSeconds: int(env, 'LQ_TELEMETRY_COARSE_STEP_SECONDS', 900, 60, 86_400),
    retentionSeconds: int(env, 'LQ_TELEMETRY_COARSE_RETENTION_DAYS', 30, 1, 3660) * 86_400,
  };
  if (coarse.stepSeconds <= fine.stepSeconds || coarse.stepSeconds % fine.stepSeconds !== 0) {
    throw new ConfigError(
      'LQ_TELEMETRY_COARSE_STEP_SECONDS must be a multiple of LQ_TELEMETRY_FINE_STEP_SECONDS, and larger',
    );
  }
  if (coarse.retentionSeconds < fine.retentionSeconds) {
    throw new ConfigError(
      'LQ_TELEMETRY_COARSE_RETENTION_DAYS must cover at least LQ_TELEMETRY_FINE_RETENTION_HOURS',
    );
  }
  // Bounds the points one answer carries: a window of either resolution.
  for (const [name, tier] of [
    ['LQ_TELEMETRY_FINE', fine],
    ['LQ_TELEMETRY_COARSE', coarse],
  ] as const) {
    if (tier.retentionSeconds / tier.stepSeconds > 20_000) {
      throw new ConfigError(
        `${name}_RETENTION over ${name}_STEP_SECONDS makes more than 20000 points per VM: take a longer step`,
      );
    }
  }
  const maxDays = int(
    env,
    'LQ_TELEMETRY_QUERY_MAX_DAYS',
    coarse.retentionSeconds / 86_400,
    1,
    3660,
  );
  return {
    fine,
    coarse,
    flushMs: int(env, 'LQ_TELEMETRY_FLUSH_MS', 5000, 100, 600_000),
    bufferMax: int(env, 'LQ_TELEMETRY_BUFFER_MAX', 50_000, 100, 10_000_000),
    batchRows: int(env, 'LQ_TELEMETRY_BATCH_ROWS', 1000, 1, 10_000),
    pruneIntervalMs: int(env, 'LQ_TELEMETRY_PRUNE_INTERVAL_MS', 60_000, 1000, 86_400_000),
    pruneBatch: int(env, 'LQ_TELEMETRY_PRUNE_BATCH', 5000, 1, 1_000_000),
    queryMaxWindowSeconds: Math.min(maxDays * 86_400, coarse.retentionSeconds),
    summaryTopMax: int(env, 'LQ_FLEET_SUMMARY_TOP_MAX', 100, 1, 10_000),
    metricsVmMax: int(env, 'LQ_METRICS_VM_MAX', 10_000, 0, 1_000_000),
  };
}

/**
 * A replica's own spool directory when none is set: under the temp dir, named by what sets
 * replicas apart on one host (database, ports), so a restarted replica finds its rows.
 */
function defaultSpoolDir(env: NodeJS.ProcessEnv, databaseUrl: string): string {
  const key = [databaseUrl, env.LQ_HTTP_PORT ?? '8080', env.LQ_GRPC_PORT ?? '9090'].join('|');
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return join(tmpdir(), 'limiquantix-audit-spool', hash);
}

function outputPatterns(env: NodeJS.ProcessEnv): RegExp[] {
  const raw = env.LQ_OUTPUT_REDACT_PATTERNS;
  if (raw === undefined || raw.trim() === '') {
    return [];
  }
  try {
    return parseOutputPatterns(raw);
  } catch (err) {
    throw new ConfigError(`LQ_OUTPUT_REDACT_PATTERNS ${(err as Error).message}`);
  }
}

/** Reads and validates the environment once, at boot; fails naming the variable. */
export function parseControlPlaneEnv(env: NodeJS.ProcessEnv): ControlPlaneConfig {
  const { url: databaseUrl, tls: databaseTls } = parseDatabaseEnv(env);
  const nats = envNats(env);
  const logLevel = envLogLevel(env);
  const guestTimeoutSeconds = int(env, 'LQ_GUEST_TIMEOUT_SECONDS', 30, 1, 86_400);
  const guestTimeoutMaxSeconds = int(env, 'LQ_GUEST_TIMEOUT_MAX_SECONDS', 3600, 1, 86_400);
  if (guestTimeoutSeconds > guestTimeoutMaxSeconds) {
    throw new ConfigError('LQ_GUEST_TIMEOUT_SECONDS must not exceed LQ_GUEST_TIMEOUT_MAX_SECONDS');
  }
  const nodeStaleMs = int(env, 'LQ_NODE_STALE_MS', 15_000, 100, 86_400_000);
  const vmAdoptAfterMs = int(env, 'LQ_VM_ADOPT_AFTER_MS', 0, 0, 30 * 86_400_000);
  if (vmAdoptAfterMs > 0 && vmAdoptAfterMs < nodeStaleMs) {
    throw new ConfigError('LQ_VM_ADOPT_AFTER_MS must be 0 or at least LQ_NODE_STALE_MS');
  }
  return {
    databaseUrl,
    databaseTls,
    databaseMigrationUrl: migrationUrl(env, databaseUrl),
    databaseRequireLeastPrivilege: bool(env, 'LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE', false),
    databasePool: {
      max: int(env, 'LQ_DATABASE_POOL_MAX', 20, 1, 1000),
      waitMs: int(env, 'LQ_DATABASE_POOL_WAIT_MS', 10_000, 100, 600_000),
    },
    runMigrations: bool(env, 'LQ_RUN_MIGRATIONS', true),
    nats: {
      ...nats,
      queueGroup: env.LQ_NATS_QUEUE_GROUP || 'lq-control-plane',
    },
    http: {
      host: env.LQ_HTTP_HOST || '0.0.0.0',
      port: int(env, 'LQ_HTTP_PORT', 8080, 0, 65_535),
      keepAliveMs: int(env, 'LQ_HTTP_KEEP_ALIVE_TIMEOUT_MS', 65_000, 1000, 600_000),
    },
    grpc: { host: env.LQ_GRPC_HOST || '0.0.0.0', port: int(env, 'LQ_GRPC_PORT', 9090, 0, 65_535) },
    trustProxy: trustProxy(env),
    guestTimeoutSeconds,
    guestTimeoutMaxSeconds,
    natsSlackMs: int(env, 'LQ_NATS_SLACK_MS', 2000, 0, 600_000),
    nodeStaleMs,
    vmAdoptAfterMs,
    claimReportIntervalMs: int(env, 'LQ_CLAIM_REPORT_INTERVAL_MS', 600_000, 1000, 86_400_000),
    locationCacheMs: int(env, 'LQ_LOCATION_CACHE_MS', 1000, 0, 60_000),
    execLostGraceMs: int(env, 'LQ_EXEC_LOST_GRACE_MS', 15_000, 0, 3_600_000),
    execCancelRetryMs: int(env, 'LQ_EXEC_CANCEL_RETRY_MS', 5000, 0, 600_000),
    leaseMs: int(env, 'LQ_LEASE_MS', 15_000, 1000, 3_600_000),
    runMaxVms: int(env, 'LQ_RUN_MAX_VMS', 10_000, 1, 1_000_000),
    runStartsInFlight: int(env, 'LQ_RUN_STARTS_IN_FLIGHT', 16, 1, 10_000),
    runStartRetryMs: int(env, 'LQ_RUN_START_RETRY_MS', 120_000, 0, 3_600_000),
    execBatchRows: int(env, 'LQ_EXEC_BATCH_ROWS', 256, 1, 5000),
    historyPageMax: int(env, 'LQ_HISTORY_PAGE_MAX', 500, 10, 10_000),
    execAsyncTimeoutSeconds: Math.min(
      int(env, 'LQ_EXEC_ASYNC_TIMEOUT_SECONDS', 3600, 1, 86_400),
      guestTimeoutMaxSeconds,
    ),
    output: {
      replyMaxBytes: int(env, 'LQ_GUEST_REPLY_MAX_BYTES', 40 * MiB, MiB, 1024 * MiB),
      replyPartStallMs: int(env, 'LQ_GUEST_REPLY_PART_STALL_MS', 10_000, 100, 600_000),
      execStoredMaxBytes: int(env, 'LQ_EXEC_OUTPUT_MAX_BYTES', 256 * MiB, 0, 64 * 1024 * MiB),
      execBufferMaxBytes: int(env, 'LQ_EXEC_OUTPUT_BUFFER_BYTES', 16 * MiB, 64 * 1024, 1024 * MiB),
      followersMax: int(env, 'LQ_EXEC_FOLLOWERS_MAX', 500, 1, 100_000),
      followHeldMax: int(env, 'LQ_EXEC_FOLLOW_HELD_MAX', 256, 1, 100_000),
      followBufferBytes: int(env, 'LQ_EXEC_FOLLOW_BUFFER_BYTES', 4 * MiB, 64 * 1024, 1024 * MiB),
      cancelSettleMs: int(env, 'LQ_EXEC_CANCEL_SETTLE_MS', 5000, 0, 600_000),
    },
    limits: {
      maxCommandBytes: int(env, 'LQ_MAX_COMMAND_BYTES', 65_536, 1, 16 * 1024 * 1024),
      maxEnvBytes: int(env, 'LQ_MAX_ENV_BYTES', 65_536, 0, 16 * 1024 * 1024),
      maxStdinBytes: int(env, 'LQ_MAX_STDIN_BYTES', 1024 * 1024, 0, 64 * 1024 * 1024),
      maxPathBytes: int(env, 'LQ_MAX_PATH_BYTES', 4096, 1, 65_536),
      maxUploadBytes: int(env, 'LQ_MAX_UPLOAD_BYTES', 16 * 1024 ** 3, 0, Number.MAX_SAFE_INTEGER),
    },
    auth: {
      adminToken: adminToken(env),
      jwtSecret: jwtSecret(env),
      accessTokenTtlSeconds: int(env, 'LQ_ACCESS_TOKEN_TTL_SECONDS', 900, 10, 86_400),
      refreshTokenTtlSeconds: int(env, 'LQ_REFRESH_TOKEN_TTL_SECONDS', 604_800, 60, 31_536_000),
      cacheSeconds: int(env, 'LQ_AUTH_CACHE_SECONDS', 2, 0, 300),
      scryptLogN: int(env, 'LQ_PASSWORD_SCRYPT_LOG_N', 15, 10, 20),
      signIn: {
        maxFailuresPerUser: int(env, 'LQ_SIGNIN_MAX_FAILURES_PER_USER', 20, 1, 100_000),
        maxFailuresPerAddress: int(env, 'LQ_SIGNIN_MAX_FAILURES_PER_ADDRESS', 100, 1, 1_000_000),
        windowSeconds: int(env, 'LQ_SIGNIN_FAILURE_WINDOW_SECONDS', 60, 1, 86_400),
      },
    },
    signing: {
      keyFile: signingKeyFile(env),
      requestTtlSeconds: int(env, 'LQ_REQUEST_SIGNATURE_TTL_SECONDS', 30, 5, 600),
    },
    files: {
      consoleDir: directory(env, 'LQ_CONSOLE_DIR'),
      agentDownloadsDir: directory(env, 'LQ_AGENT_DOWNLOADS_DIR'),
    },
    agentUpdates: {
      releaseKeys: releaseKeys(env),
      readyGraceMs: int(env, 'LQ_AGENT_UPDATE_READY_GRACE_MS', 30_000, 0, 3_600_000),
      pollMs: int(env, 'LQ_AGENT_UPDATE_POLL_MS', 1000, 50, 60_000),
      chunkTimeoutMs: int(env, 'LQ_AGENT_UPDATE_CHUNK_TIMEOUT_MS', 30_000, 1000, 600_000),
      commitTimeoutMs: int(env, 'LQ_AGENT_UPDATE_COMMIT_TIMEOUT_MS', 120_000, 1000, 3_600_000),
      releaseMaxBytes: int(env, 'LQ_AGENT_RELEASE_MAX_BYTES', 512 * 1024 * 1024, 1024, 2 ** 32),
      rolloutMaxVms: int(env, 'LQ_AGENT_ROLLOUT_MAX_VMS', 10_000, 1, 1_000_000),
      rolloutLeaseMs: int(env, 'LQ_AGENT_ROLLOUT_LEASE_MS', 30_000, 1000, 3_600_000),
    },
    authFailureAudit: {
      perAddressPerMinute: int(env, 'LQ_AUDIT_AUTH_FAILURES_PER_ADDRESS', 10, 0, 100_000),
      perMinute: int(env, 'LQ_AUDIT_AUTH_FAILURES_PER_MINUTE', 100, 0, 1_000_000),
    },
    audit: {
      batchMax: int(env, 'LQ_AUDIT_BATCH_MAX', 256, 1, 5000),
      writeTimeoutMs: int(env, 'LQ_AUDIT_WRITE_TIMEOUT_MS', 3000, 100, 120_000),
      pendingMax: int(env, 'LQ_AUDIT_PENDING_MAX', 100_000, 100, 10_000_000),
      retryMs: int(env, 'LQ_AUDIT_RETRY_MS', 1000, 10, 60_000),
      outcomeWaitMs: int(env, 'LQ_AUDIT_OUTCOME_WAIT_MS', 2000, 0, 60_000),
      spoolDir: env.LQ_AUDIT_SPOOL_DIR || defaultSpoolDir(env, databaseUrl),
      spoolMaxBytes: int(env, 'LQ_AUDIT_SPOOL_MAX_BYTES', 256 * 1024 ** 2, 0, 2 ** 40),
      outputMaxBytes: int(env, 'LQ_AUDIT_OUTPUT_MAX_BYTES', 65_536, 0, 16 * 1024 * 1024),
      pageMax: int(env, 'LQ_AUDIT_PAGE_MAX', 1000, 10, 100_000),
      exportMaxRows: int(env, 'LQ_AUDIT_EXPORT_MAX_ROWS', 1_000_000, 1, 100_000_000),
      outputRedaction: {
        defaults: bool(env, 'LQ_OUTPUT_REDACT_DEFAULTS', true),
        patterns: outputPatterns(env),
        holdBytes: int(env, 'LQ_OUTPUT_REDACT_HOLD_BYTES', 4096, 0, 1024 * 1024),
      },
    },
    auditCheckpoint: auditCheckpoint(env),
    execOutputStream: execOutputStream(env),
    telemetry: telemetryHistory(env),
    logLevel,
  };
}

/** DATABASE_MIGRATION_URL: a postgres:// URL of the same database as DATABASE_URL. */
export function migrationUrl(env: NodeJS.ProcessEnv, runtimeUrl: string): string | undefined {
  const url = env.DATABASE_MIGRATION_URL || undefined;
  if (url === undefined) {
    return undefined;
  }
  if (!/^postgres(ql)?:\/\/.+/.test(url)) {
    throw new ConfigError('DATABASE_MIGRATION_URL must be a postgres:// URL (the owner role)');
  }
  const parse = (u: string) => new URL(u.replace(/^postgres(ql)?:/, 'http:'));
  const [owner, runtime] = [parse(url), parse(runtimeUrl)];
  if (owner.host !== runtime.host || owner.pathname !== runtime.pathname) {
    throw new ConfigError(
      `DATABASE_MIGRATION_URL must name the same server and database as DATABASE_URL (${owner.host}${owner.pathname} vs ${runtime.host}${runtime.pathname})`,
    );
  }
  if (decodeURIComponent(owner.username) === decodeURIComponent(runtime.username)) {
    throw new ConfigError(
      'DATABASE_MIGRATION_URL has the same user as DATABASE_URL: give the owner role there and the replicas’ role in DATABASE_URL (README: database roles)',
    );
  }
  return url;
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SUBJECT = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,15}$/;

function auditCheckpoint(env: NodeJS.ProcessEnv): AuditCheckpointConfig {
  const jetstream = (env.LQ_AUDIT_CHECKPOINT_JETSTREAM ||
    'optional') as AuditCheckpointConfig['jetstream'];
  if (!AUDIT_CHECKPOINT_JETSTREAM_MODES.includes(jetstream)) {
    throw new ConfigError(
      `LQ_AUDIT_CHECKPOINT_JETSTREAM must be one of ${AUDIT_CHECKPOINT_JETSTREAM_MODES.join(', ')} (got ${JSON.stringify(jetstream)})`,
    );
  }
  const stream = env.LQ_AUDIT_CHECKPOINT_STREAM || 'LQ_AUDIT_CHECKPOINTS';
  if (!STREAM_NAME.test(stream)) {
    throw new ConfigError(
      `LQ_AUDIT_CHECKPOINT_STREAM ${JSON.stringify(stream)} is not a stream name (1-64 of A-Z a-z 0-9 _ -)`,
    );
  }
  const subject = env.LQ_AUDIT_CHECKPOINT_SUBJECT || 'lq.v1.audit.checkpoints';
  if (!SUBJECT.test(subject)) {
    throw new ConfigError(
      `LQ_AUDIT_CHECKPOINT_SUBJECT ${JSON.stringify(subject)} is not a subject without wildcards (tokens of A-Z a-z 0-9 _ - joined by dots)`,
    );
  }
  return {
    rows: int(env, 'LQ_AUDIT_CHECKPOINT_ROWS', 1000, 1, 10_000_000),
    intervalMs: int(env, 'LQ_AUDIT_CHECKPOINT_INTERVAL_MS', 60_000, 100, 86_400_000),
    jetstream,
    stream,
    subject,
    streamReplicas: int(env, 'LQ_AUDIT_CHECKPOINT_STREAM_REPLICAS', 1, 1, 5),
    streamMaxMsgs: int(env, 'LQ_AUDIT_CHECKPOINT_STREAM_MAX_MSGS', 1_000_000, 1000, 1_000_000_000),
    timeoutMs: int(env, 'LQ_AUDIT_CHECKPOINT_TIMEOUT_MS', 5000, 100, 120_000),
  };
}

function execOutputStream(env: NodeJS.ProcessEnv): ExecOutputStreamConfig {
  const jetstream = (env.LQ_EXEC_OUTPUT_JETSTREAM ||
    'optional') as ExecOutputStreamConfig['jetstream'];
  if (!EXEC_OUTPUT_JETSTREAM_MODES.includes(jetstream)) {
    throw new ConfigError(
      `LQ_EXEC_OUTPUT_JETSTREAM must be one of ${EXEC_OUTPUT_JETSTREAM_MODES.join(', ')} (got ${JSON.stringify(jetstream)})`,
    );
  }
  const stream = env.LQ_EXEC_OUTPUT_STREAM || 'LQ_EXEC_OUTPUT';
  if (!STREAM_NAME.test(stream)) {
    throw new ConfigError(
      `LQ_EXEC_OUTPUT_STREAM ${JSON.stringify(stream)} is not a stream name (1-64 of A-Z a-z 0-9 _ -)`,
    );
  }
  return {
    jetstream,
    stream,
    streamReplicas: int(env, 'LQ_EXEC_OUTPUT_STREAM_REPLICAS', 1, 1, 5),
    maxBytes: int(env, 'LQ_EXEC_OUTPUT_STREAM_MAX_BYTES', 1024 * MiB, MiB, 2 ** 42),
    maxAgeSeconds: int(env, 'LQ_EXEC_OUTPUT_STREAM_MAX_AGE_S', 3600, 60, 7 * 86_400),
    drainMs: int(env, 'LQ_EXEC_OUTPUT_DRAIN_MS', 30_000, 0, 600_000),
    timeoutMs: int(env, 'LQ_EXEC_OUTPUT_STREAM_TIMEOUT_MS', 5000, 100, 120_000),
  };
}

/**
 * DATABASE_URL and its TLS (DATABASE_SSL_*), read by the control plane and by the one-shot
 * migrations alike. libpq's modes: `require` encrypts without checking the server; `verify-ca`
 * checks its certificate against the CA; `verify-full` also checks that it names the host of
 * DATABASE_URL, which is what stops a machine in the middle.
 */
export function parseDatabaseEnv(env: NodeJS.ProcessEnv): { url: string; tls: DatabaseTls } {
  const url = env.DATABASE_URL ?? '';
  if (!/^postgres(ql)?:\/\/.+/.test(url)) {
    throw new ConfigError('DATABASE_URL must be set to a postgres:// URL');
  }
  const mode = env.DATABASE_SSL_MODE || undefined;
  const ca = envCertificateFile(env, 'DATABASE_SSL_CA');
  const pair = envKeyPairFiles(env, 'DATABASE_SSL_CERT', 'DATABASE_SSL_KEY');
  if (mode === undefined) {
    if (ca !== undefined || pair !== undefined) {
      throw new ConfigError(
        'DATABASE_SSL_MODE must be set (verify-full, say) when DATABASE_SSL_CA or DATABASE_SSL_CERT is',
      );
    }
    return { url, tls: undefined };
  }
  if (!(DATABASE_SSL_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError(
      `DATABASE_SSL_MODE must be one of ${DATABASE_SSL_MODES.join(', ')} (got ${JSON.stringify(mode)})`,
    );
  }
  // node-postgres lets the URL's ssl parameters override the options given beside it.
  const query = new URL(url.replace(/^postgres(ql)?:/, 'http:')).searchParams;
  for (const p of ['ssl', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey']) {
    if (query.has(p)) {
      throw new ConfigError(
        `DATABASE_URL sets ${p} and DATABASE_SSL_MODE is set: give the TLS settings in one place`,
      );
    }
  }
  if (mode === 'disable') {
    return { url, tls: false };
  }
  const files = {
    ...(ca === undefined ? {} : { ca: readFileSync(ca, 'utf8') }),
    ...(pair === undefined
      ? {}
      : { cert: readFileSync(pair.certFile, 'utf8'), key: readFileSync(pair.keyFile, 'utf8') }),
  };
  switch (mode) {
    case 'require':
      return { url, tls: { ...files, rejectUnauthorized: false } };
    case 'verify-ca':
      return {
        url,
        tls: { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined },
      };
    default:
      return { url, tls: { ...files, rejectUnauthorized: true } };
  }
}

const MiB = 1024 * 1024;

const PROXY_PART = /^(loopback|linklocal|uniquelocal|[0-9a-fA-F:.]+(\/\d{1,3})?)$/;

function trustProxy(env: NodeJS.ProcessEnv): string | false {
  const v = (env.LQ_TRUST_PROXY ?? '').trim();
  if (!v) {
    return false;
  }
  for (const part of v.split(',').map((p) => p.trim())) {
    if (!PROXY_PART.test(part)) {
      throw new ConfigError(
        `LQ_TRUST_PROXY: ${JSON.stringify(part)} is not loopback, linklocal, uniquelocal or an address/CIDR`,
      );
    }
  }
  return v;
}

const ADMIN_TOKEN = /^lq_[a-z0-9]{8}_[A-Za-z0-9]{32,128}$/;

function adminToken(env: NodeJS.ProcessEnv): string | undefined {
  const v = env.LQ_ADMIN_TOKEN;
  if (!v) {
    return undefined;
  }
  if (!ADMIN_TOKEN.test(v)) {
    throw new ConfigError(
      'LQ_ADMIN_TOKEN must look like lq_<8 of a-z0-9>_<32 to 128 of A-Za-z0-9> (e.g. lq_admin001_ followed by 40 random letters)',
    );
  }
  return v;
}

/** A folder setting: when set, it must be an existing directory (a typo is an error, not a 404). */
function releaseKeys(env: NodeJS.ProcessEnv): string[] {
  const keys = (env.LQ_AGENT_RELEASE_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of keys) {
    if (Buffer.from(k, 'base64').length !== 32) {
      throw new ConfigError(
        `LQ_AGENT_RELEASE_KEYS: ${k} is not a base64 Ed25519 public key of 32 bytes`,
      );
    }
  }
  return keys;
}

function directory(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const dir = env[name] || undefined;
  if (dir !== undefined && !statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new ConfigError(`${name} ${dir}: not a directory`);
  }
  return dir;
}

function signingKeyFile(env: NodeJS.ProcessEnv): string | undefined {
  const file = env.LQ_SIGNING_KEY_FILE || undefined;
  if (file === undefined) {
    return undefined;
  }
  try {
    signingKeyFromPem(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(
      `LQ_SIGNING_KEY_FILE ${file}: not a readable PEM Ed25519 private key (${(err as Error).message}); make one with openssl genpkey -algorithm ed25519`,
    );
  }
  return file;
}

function jwtSecret(env: NodeJS.ProcessEnv): string | undefined {
  const v = env.LQ_JWT_SECRET;
  if (v !== undefined && v.length < 32) {
    throw new ConfigError('LQ_JWT_SECRET must be at least 32 characters');
  }
  return v || undefined;
}

export const CONTROL_PLANE_CONFIG = Symbol('CONTROL_PLANE_CONFIG');
