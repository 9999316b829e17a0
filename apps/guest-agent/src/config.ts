import { readFileSync } from 'node:fs';
import { POLICY_NAMES, type PolicyName } from '@lq/proto';

/** Operation names as policy lists name them (the operation table's policy names). */
export const OPERATIONS: readonly PolicyName[] = POLICY_NAMES;
export type OperationName = PolicyName;

export const DEFAULT_CONFIG_PATH = '/etc/limiquantix/agent.json';
export const DEFAULT_DEVICE_PATH = '/dev/virtio-ports/org.limiquantix.agent.0';

const MiB = 1024 * 1024;

export interface AgentConfig {
  /** Where the config came from, for messages ("built-in defaults" or a path). */
  source: string;
  log_level: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  max_frame_bytes: number;
  partial_frame_timeout_ms: number;
  telemetry_interval_ms: number;
  policy: {
    /** null: every operation not blocked. */
    allowed_operations: OperationName[] | null;
    blocked_operations: OperationName[];
  };
  exec: {
    default_timeout_ms: number;
    max_timeout_ms: number;
    kill_grace_ms: number;
    output_limit_bytes: number;
    output_limit_max_bytes: number;
    max_concurrent: number;
    max_stdin_bytes: number;
    max_env_bytes: number;
    /** Streamed output per execution; past it the command's pipes are read more slowly. */
    stream_bytes_per_second: number;
    shell: string;
    path: string;
  };
  files: {
    roots: string[];
    chunk_max_bytes: number;
    upload_idle_timeout_ms: number;
    max_uploads: number;
    /** Entries in a file.list page when the request names no limit. */
    list_page_entries: number;
    /** Entries a file.list page may hold at most (what the agent keeps in memory per listing). */
    list_max_entries: number;
    /** File handles (file.open) open at once; BUSY beyond. */
    max_open_handles: number;
    /** A file handle unused this long is closed by the agent. */
    handle_idle_timeout_ms: number;
  };
  results: {
    retention_ms: number;
    cache_bytes: number;
  };
  memory: {
    /** Give memory back this long after the last request ends (memory/reclaimer.ts); 0: never. */
    idle_reclaim_ms: number;
    /** Requests in progress at once; the channel is not read further until half are done. */
    max_inflight_requests: number;
    /** File chunk buffers kept for reuse between reads; 0: a new buffer per chunk. */
    buffer_pool_size: number;
  };
  network: {
    /** Interface names (shell-style `*` wildcards) left out of reports. */
    exclude_interfaces: string[];
  };
  quiesce: {
    pre_freeze_dir: string;
    post_thaw_dir: string;
    hook_timeout_ms: number;
    default_timeout_seconds: number;
    max_timeout_seconds: number;
    /** Survives an agent restart (keep it on tmpfs, never on a filesystem that gets frozen). */
    state_file: string;
    /** Filesystem types a Quiesce without mount points freezes. */
    freezable_types: string[];
    mounts_file: string;
  };
  time: {
    /** Servers for ntpdate, when it is the method found. */
    ntp_servers: string[];
  };
  commands: {
    poweroff: string[];
    reboot: string[];
    halt: string[];
    /** util-linux setpriv: sets supplementary groups, which Node's spawn cannot. */
    setpriv: string;
    /** Fallback for users that only NSS knows (LDAP, sssd). */
    getent: string;
    /** `fsfreeze --freeze|--unfreeze MOUNT` (util-linux or busybox). */
    fsfreeze: string[];
    /** Reads `user:password` lines (`-e`: crypted hashes) on stdin. */
    chpasswd: string[];
    /** Gets `@<seconds.fraction>` appended: sets the system clock (UTC). */
    set_clock: string[];
    /** Copies the system clock to the RTC. */
    hwclock_systohc: string[];
    chronyc: string;
    systemctl: string;
    ntpdate: string;
  };
  system: {
    passwd_file: string;
    group_file: string;
    os_release_file: string;
    proc_dir: string;
  };
  /** Self-update (PROTOCOL.md §10). */
  update: {
    /** The executable an update replaces; null: the one running (the Node bundle's file in a checkout). */
    executable: string | null;
    /** Where the update state and a rotated release-key list are kept. */
    state_dir: string;
    /** How long the new agent has to say AgentReady before the old one is restored. */
    ready_timeout_ms: number;
    max_executable_bytes: number;
    /** A staging file no chunk has reached for this long is removed. */
    staging_idle_timeout_ms: number;
    /** Restarts the agent through its service manager; null: the watchdog re-executes it. */
    restart_command: string[] | null;
    /** Prefix that starts the watchdog outside the service (systemd-run …); []: a new session. */
    watchdog_launcher: string[];
    /** Release public keys trusted besides the built-in ones (base64 raw Ed25519). */
    release_keys: string[];
  };
}

export function defaultConfig(): AgentConfig {
  return {
    source: 'built-in defaults',
    log_level: 'info',
    max_frame_bytes: 4 * MiB,
    partial_frame_timeout_ms: 1000,
    telemetry_interval_ms: 10_000,
    policy: { allowed_operations: null, blocked_operations: [] },
    exec: {
      default_timeout_ms: 60_000,
      max_timeout_ms: 24 * 3600 * 1000,
      kill_grace_ms: 2000,
      output_limit_bytes: 1 * MiB,
      output_limit_max_bytes: 1.5 * MiB,
      max_concurrent: 256,
      max_stdin_bytes: 1 * MiB,
      max_env_bytes: 64 * 1024,
      stream_bytes_per_second: 4 * MiB,
      shell: '/bin/sh',
      path: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    },
    files: {
      roots: ['/'],
      chunk_max_bytes: 1 * MiB,
      upload_idle_timeout_ms: 60_000,
      max_uploads: 16,
      list_page_entries: 1000,
      list_max_entries: 10_000,
      max_open_handles: 16,
      handle_idle_timeout_ms: 60_000,
    },
    results: { retention_ms: 600_000, cache_bytes: 64 * MiB },
    memory: { idle_reclaim_ms: 500, max_inflight_requests: 1024, buffer_pool_size: 4 },
    network: { exclude_interfaces: ['lo', 'veth*', 'docker*', 'virbr*', 'br-*'] },
    quiesce: {
      pre_freeze_dir: '/etc/limiquantix/pre-freeze.d',
      post_thaw_dir: '/etc/limiquantix/post-thaw.d',
      hook_timeout_ms: 60_000,
      default_timeout_seconds: 60,
      max_timeout_seconds: 3600,
      state_file: '/run/limiquantix/quiesce.json',
      freezable_types: [
        'ext4',
        'ext3',
        'ext2',
        'xfs',
        'btrfs',
        'f2fs',
        'jfs',
        'reiserfs',
        'nilfs2',
      ],
      mounts_file: '/proc/self/mounts',
    },
    time: { ntp_servers: ['pool.ntp.org'] },
    commands: {
      poweroff: ['/sbin/shutdown', '-P', 'now'],
      reboot: ['/sbin/shutdown', '-r', 'now'],
      halt: ['/sbin/shutdown', '-H', 'now'],
      setpriv: '/usr/bin/setpriv',
      getent: '/usr/bin/getent',
      fsfreeze: ['/sbin/fsfreeze'],
      chpasswd: ['/usr/sbin/chpasswd'],
      set_clock: ['/bin/date', '-u', '-s'],
      hwclock_systohc: ['/sbin/hwclock', '--systohc', '--utc'],
      chronyc: '/usr/bin/chronyc',
      systemctl: '/bin/systemctl',
      ntpdate: '/usr/sbin/ntpdate',
    },
    system: {
      passwd_file: '/etc/passwd',
      group_file: '/etc/group',
      os_release_file: '/etc/os-release',
      proc_dir: '/proc',
    },
    update: {
      executable: null,
      state_dir: '/var/lib/limiquantix',
      ready_timeout_ms: 30_000,
      max_executable_bytes: 256 * MiB,
      staging_idle_timeout_ms: 300_000,
      restart_command: null,
      watchdog_launcher: [],
      release_keys: [],
    },
  };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Shape = { [key: string]: Rule | Shape };
type Rule = (value: unknown, name: string) => unknown;

const int =
  (min: number, max: number): Rule =>
  (v, name) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(
        `${name} must be an integer between ${min} and ${max} (got ${JSON.stringify(v)})`,
      );
    }
    return v;
  };

const absPath: Rule = (v, name) => {
  if (typeof v !== 'string' || !v.startsWith('/')) {
    throw new ConfigError(`${name} must be an absolute path (got ${JSON.stringify(v)})`);
  }
  return v;
};

const nonEmptyString: Rule = (v, name) => {
  if (typeof v !== 'string' || v.length === 0) {
    throw new ConfigError(`${name} must be a non-empty string (got ${JSON.stringify(v)})`);
  }
  return v;
};

const command: Rule = (v, name) => {
  if (!Array.isArray(v) || v.length === 0 || v.some((a) => typeof a !== 'string')) {
    throw new ConfigError(`${name} must be a non-empty array of strings (program and arguments)`);
  }
  absPath(v[0], `${name}[0]`);
  return v as string[];
};

const stringList =
  (check?: Rule): Rule =>
  (v, name) => {
    if (!Array.isArray(v)) {
      throw new ConfigError(`${name} must be an array of strings`);
    }
    return (v as unknown[]).map((item, i) =>
      check ? check(item, `${name}[${i}]`) : nonEmptyString(item, `${name}[${i}]`),
    );
  };

const operation: Rule = (v, name) => {
  if (!OPERATIONS.includes(v as OperationName)) {
    throw new ConfigError(
      `${name}: unknown operation ${JSON.stringify(v)} (known: ${OPERATIONS.join(', ')})`,
    );
  }
  return v;
};

const oneOf =
  (values: readonly string[]): Rule =>
  (v, name) => {
    if (!values.includes(v as string)) {
      throw new ConfigError(
        `${name} must be one of ${values.join(', ')} (got ${JSON.stringify(v)})`,
      );
    }
    return v;
  };

const base64Key: Rule = (v, name) => {
  if (typeof v !== 'string' || Buffer.from(v, 'base64').length !== 32) {
    throw new ConfigError(`${name} must be a base64 Ed25519 public key of 32 bytes`);
  }
  return v;
};

const SHAPE: Shape = {
  log_level: oneOf(['debug', 'info', 'warn', 'error', 'silent']),
  max_frame_bytes: int(64 * 1024, 64 * MiB),
  partial_frame_timeout_ms: int(50, 60_000),
  telemetry_interval_ms: int(0, 24 * 3600 * 1000),
  policy: {
    allowed_operations: (v, name) => (v === null ? null : stringList(operation)(v, name)),
    blocked_operations: stringList(operation),
  },
  exec: {
    default_timeout_ms: int(1, 7 * 24 * 3600 * 1000),
    max_timeout_ms: int(1, 7 * 24 * 3600 * 1000),
    kill_grace_ms: int(0, 600_000),
    output_limit_bytes: int(0, 64 * MiB),
    output_limit_max_bytes: int(0, 64 * MiB),
    max_concurrent: int(1, 100_000),
    max_stdin_bytes: int(0, 64 * MiB),
    max_env_bytes: int(0, 16 * MiB),
    stream_bytes_per_second: int(64 * 1024, 1024 * MiB),
    shell: absPath,
    path: nonEmptyString,
  },
  files: {
    roots: stringList(absPath),
    chunk_max_bytes: int(1, 64 * MiB),
    upload_idle_timeout_ms: int(1000, 24 * 3600 * 1000),
    max_uploads: int(1, 10_000),
    list_page_entries: int(1, 100_000),
    list_max_entries: int(1, 100_000),
    max_open_handles: int(1, 1024),
    handle_idle_timeout_ms: int(100, 24 * 3600 * 1000),
  },
  results: {
    retention_ms: int(0, 7 * 24 * 3600 * 1000),
    cache_bytes: int(0, 4096 * MiB),
  },
  memory: {
    idle_reclaim_ms: int(0, 3_600_000),
    max_inflight_requests: int(1, 100_000),
    buffer_pool_size: int(0, 64),
  },
  network: { exclude_interfaces: stringList() },
  quiesce: {
    pre_freeze_dir: absPath,
    post_thaw_dir: absPath,
    hook_timeout_ms: int(100, 3_600_000),
    default_timeout_seconds: int(1, 86_400),
    max_timeout_seconds: int(1, 86_400),
    state_file: absPath,
    freezable_types: stringList(),
    mounts_file: absPath,
  },
  time: { ntp_servers: stringList() },
  commands: {
    poweroff: command,
    reboot: command,
    halt: command,
    setpriv: absPath,
    getent: absPath,
    fsfreeze: command,
    chpasswd: command,
    set_clock: command,
    hwclock_systohc: command,
    chronyc: absPath,
    systemctl: absPath,
    ntpdate: absPath,
  },
  system: {
    passwd_file: absPath,
    group_file: absPath,
    os_release_file: absPath,
    proc_dir: absPath,
  },
  update: {
    executable: (v, name) => (v === null ? null : absPath(v, name)),
    state_dir: absPath,
    ready_timeout_ms: int(1000, 3_600_000),
    max_executable_bytes: int(1024, 1024 * MiB),
    staging_idle_timeout_ms: int(1000, 24 * 3600 * 1000),
    restart_command: (v, name) => (v === null ? null : command(v, name)),
    watchdog_launcher: (v, name) => (Array.isArray(v) && v.length === 0 ? [] : command(v, name)),
    release_keys: stringList(base64Key),
  },
};

function applyShape(
  target: Record<string, unknown>,
  input: unknown,
  shape: Shape,
  prefix: string,
): void {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(`${prefix || 'the config'} must be a JSON object`);
  }
  for (const [key, value] of Object.entries(input)) {
    const name = prefix ? `${prefix}.${key}` : key;
    const rule = shape[key];
    if (rule === undefined) {
      throw new ConfigError(`unknown setting ${name} (known: ${Object.keys(shape).join(', ')})`);
    }
    if (typeof rule === 'function') {
      target[key] = rule(value, name);
    } else {
      applyShape(target[key] as Record<string, unknown>, value, rule, name);
    }
  }
}

/** Validates a parsed config object over the defaults; throws ConfigError naming the setting. */
export function parseConfig(input: unknown, source: string): AgentConfig {
  const config = defaultConfig();
  config.source = source;
  try {
    applyShape(config as unknown as Record<string, unknown>, input, SHAPE, '');
    checkRelations(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ConfigError(`${source}: ${err.message}`);
    }
    throw err;
  }
  return config;
}

// Responses must fit one frame: two capped streams plus the envelope, and a full file chunk.
const ENVELOPE_SLACK = 64 * 1024;

function checkRelations(c: AgentConfig): void {
  if (c.exec.default_timeout_ms > c.exec.max_timeout_ms) {
    throw new ConfigError('exec.default_timeout_ms must not exceed exec.max_timeout_ms');
  }
  if (c.exec.output_limit_bytes > c.exec.output_limit_max_bytes) {
    throw new ConfigError('exec.output_limit_bytes must not exceed exec.output_limit_max_bytes');
  }
  if (2 * c.exec.output_limit_max_bytes + ENVELOPE_SLACK > c.max_frame_bytes) {
    throw new ConfigError(
      `exec.output_limit_max_bytes ${c.exec.output_limit_max_bytes} is too large for max_frame_bytes ${c.max_frame_bytes}: both streams must fit one frame (2 x limit + 64 KiB)`,
    );
  }
  if (c.files.chunk_max_bytes + ENVELOPE_SLACK > c.max_frame_bytes) {
    throw new ConfigError(
      `files.chunk_max_bytes ${c.files.chunk_max_bytes} must leave 64 KiB of max_frame_bytes ${c.max_frame_bytes} for the envelope`,
    );
  }
  if (c.exec.max_stdin_bytes + c.exec.max_env_bytes + ENVELOPE_SLACK > c.max_frame_bytes) {
    throw new ConfigError('exec.max_stdin_bytes + exec.max_env_bytes must fit in max_frame_bytes');
  }
  if (c.quiesce.default_timeout_seconds > c.quiesce.max_timeout_seconds) {
    throw new ConfigError(
      'quiesce.default_timeout_seconds must not exceed quiesce.max_timeout_seconds',
    );
  }
  if (c.files.list_page_entries > c.files.list_max_entries) {
    throw new ConfigError('files.list_page_entries must not exceed files.list_max_entries');
  }
  if (c.files.roots.length === 0) {
    throw new ConfigError('files.roots must name at least one directory');
  }
}

/**
 * Loads the config file. A missing file at the default path means built-in defaults; a missing
 * file named explicitly, unreadable JSON or an invalid setting is an error.
 */
export function loadConfig(path: string | undefined): AgentConfig {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && path === undefined) {
      return defaultConfig();
    }
    throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(parsed, file);
}

export function enabledOperations(c: AgentConfig): OperationName[] {
  return OPERATIONS.filter((op) => operationBlockedBy(c, op) === null);
}

/** Names the policy key that blocks an operation, or null when it is allowed. */
export function operationBlockedBy(c: AgentConfig, op: OperationName): string | null {
  if (c.policy.blocked_operations.includes(op)) {
    return 'policy.blocked_operations';
  }
  if (c.policy.allowed_operations !== null && !c.policy.allowed_operations.includes(op)) {
    return 'policy.allowed_operations';
  }
  return null;
}
