// What each setting accepts (its rule), and the checks that relate one setting to another.
import type { AgentConfig } from './agent-config.js';
import { OPERATIONS, type OperationName } from './operations.js';
import {
  ConfigError,
  absPath,
  base64Key,
  command,
  int,
  nonEmptyString,
  oneOf,
  stringList,
  type Rule,
  type Shape,
  boolean,
  windowsPath,
} from './rules.js';

const MiB = 1024 * 1024;

const operation: Rule = (v, name) => {
  if (!OPERATIONS.includes(v as OperationName)) {
    throw new ConfigError(
      `${name}: unknown operation ${JSON.stringify(v)} (known: ${OPERATIONS.join(', ')})`,
    );
  }
  return v;
};

export const SHAPE: Shape = {
  log_level: oneOf(['debug', 'info', 'warn', 'error', 'silent']),
  max_frame_bytes: int(64 * 1024, 64 * MiB),
  partial_frame_timeout_ms: int(50, 60_000),
  startup_quiet_ms: int(0, 1000),
  telemetry_interval_ms: int(0, 24 * 3600 * 1000),
  helper_thread_nice: int(0, 19),
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
    read_ahead_bytes: int(0, MiB),
    read_ahead_max_age_ms: int(0, 60_000),
    sync_read_slow_ms: int(0, 60_000),
  },
  results: {
    retention_ms: int(0, 7 * 24 * 3600 * 1000),
    cache_bytes: int(0, 4096 * MiB),
  },
  memory: {
    idle_reclaim_ms: int(0, 3_600_000),
    collect_after_output_bytes: int(0, 64 * 1024 * MiB),
    max_inflight_requests: int(1, 100_000),
    buffer_pool_size: int(0, 64),
  },
  network: {
    exclude_interfaces: stringList(),
    backend: oneOf(['auto', 'netplan', 'networkmanager', 'networkd', 'ifupdown']),
    confirm_timeout_ms: int(1000, 3_600_000),
    max_confirm_timeout_ms: int(1000, 3_600_000),
    command_timeout_ms: int(100, 600_000),
    state_file: absPath,
    netplan_dir: absPath,
    nm_connections_dir: absPath,
    networkd_dir: absPath,
    interfaces_file: absPath,
  },
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
    netplan: absPath,
    nmcli: absPath,
    networkctl: absPath,
    ifup: absPath,
    ifdown: absPath,
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
  windows: {
    cmd: windowsPath,
    powershell: windowsPath,
    shutdown: windowsPath,
    w32tm: windowsPath,
    net: windowsPath,
    taskkill: windowsPath,
    default_cwd: windowsPath,
    allow_unc_paths: boolean,
    owner_lookup: boolean,
    owner_timeout_ms: int(100, 600_000),
    owner_max_output_bytes: int(4096, 256 * MiB),
  },
};

// Responses must fit one frame: two capped streams plus the envelope, and a full file chunk.
const ENVELOPE_SLACK = 64 * 1024;

export function checkRelations(c: AgentConfig): void {
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
  if (c.network.confirm_timeout_ms > c.network.max_confirm_timeout_ms) {
    throw new ConfigError(
      'network.confirm_timeout_ms must not exceed network.max_confirm_timeout_ms',
    );
  }
  if (c.files.roots.length === 0) {
    throw new ConfigError('files.roots must name at least one directory');
  }
}
