// The agent's settings and their built-in defaults. What each setting accepts is in
// settings-shape.ts; every key here has a rule there (a test checks both lists agree).
import type { OperationName } from './operations.js';

const MiB = 1024 * 1024;

export interface AgentConfig {
  /** Where the config came from, for messages ("built-in defaults" or a path). */
  source: string;
  log_level: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  max_frame_bytes: number;
  partial_frame_timeout_ms: number;
  /**
   * At start the agent answers sync and ping before it loads the rest of itself
   * (early-responder.ts); it loads the rest at the first other frame, after this long without a
   * frame, or at most twenty times this after start. 0: loads it at once.
   */
  startup_quiet_ms: number;
  telemetry_interval_ms: number;
  /**
   * The nice value the runtime's own helper threads (JIT compilers, heap pre-faulting, the
   * allocator's purge) run at (helper-threads.ts); 0: the agent's own. Linux only.
   */
  helper_thread_nice: number;
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
    /**
     * A handle's small sequential reads (a quarter of this or less) are served from one read of
     * this many bytes (files/read-ahead.ts); 0: a read per request.
     */
    read_ahead_bytes: number;
    /** Bytes read ahead are served for this long at most, then read again. */
    read_ahead_max_age_ms: number;
    /**
     * A handle's reads on a local filesystem are made on the agent's thread (from the page cache
     * a 1 MiB read takes a few hundred µs; a trip through the thread pool costs more) until one
     * takes longer than this: that handle's reads go through the thread pool from then on, so a
     * file whose reads wait on its disk does not hold up the agent. 0: only reads of up to
     * 64 KiB on the agent's thread.
     */
    sync_read_slow_ms: number;
  };
  results: {
    retention_ms: number;
    cache_bytes: number;
  };
  memory: {
    /** Give memory back this long after the last request ends (memory/reclaimer.ts); 0: never. */
    idle_reclaim_ms: number;
    /**
     * Collect garbage as soon as commands have produced this much output past what they kept
     * (read, then dropped) since the last time, busy or not; 0: only when idle.
     */
    collect_after_output_bytes: number;
    /** Requests in progress at once; the channel is not read further until half are done. */
    max_inflight_requests: number;
    /**
     * File chunk buffers kept for reuse between reads, as many for assembling file writes'
     * frames, and as many (64 KiB each) for joining small file chunks' reply frames; 0: a new
     * buffer per chunk and per frame.
     */
    buffer_pool_size: number;
  };
  network: {
    /** Interface names (shell-style `*` wildcards) left out of reports. */
    exclude_interfaces: string[];
    /** The stack network.configure writes for (PROTOCOL.md §11); auto: detected. */
    backend: 'auto' | 'netplan' | 'networkmanager' | 'networkd' | 'ifupdown';
    /** How long an apply waits for network.confirm before it is rolled back. */
    confirm_timeout_ms: number;
    /** The longest confirm_timeout_ms a request may ask for. */
    max_confirm_timeout_ms: number;
    /** Each apply command (ifup, netplan apply, nmcli, networkctl). */
    command_timeout_ms: number;
    /** The pending apply (the previous files), kept across an agent restart. */
    state_file: string;
    netplan_dir: string;
    nm_connections_dir: string;
    networkd_dir: string;
    interfaces_file: string;
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
    /** Network stacks' tools (PROTOCOL.md §11); tests point them at doubles. */
    netplan: string;
    nmcli: string;
    networkctl: string;
    ifup: string;
    ifdown: string;
  };
  system: {
    passwd_file: string;
    group_file: string;
    os_release_file: string;
    proc_dir: string;
  };
  /**
   * Windows guests only (platform/windows.platform.ts; WINDOWS.md): the system programs the
   * agent runs there, where a Linux guest uses `commands`. Tests point them at doubles.
   */
  windows: {
    cmd: string;
    powershell: string;
    shutdown: string;
    w32tm: string;
    net: string;
    taskkill: string;
    /** A command's working directory when the request names none. */
    default_cwd: string;
    /** Accept \\server\share paths in file operations (off: only drive paths). */
    allow_unc_paths: boolean;
    /** Report files' owners from their ACLs (one PowerShell run per stat or listing page). */
    owner_lookup: boolean;
    /** How long that PowerShell run may take. */
    owner_timeout_ms: number;
    /** How much output it may give (about 100 bytes a file). */
    owner_max_output_bytes: number;
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
    startup_quiet_ms: 50,
    telemetry_interval_ms: 10_000,
    helper_thread_nice: 19,
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
      read_ahead_bytes: 64 * 1024,
      read_ahead_max_age_ms: 100,
      sync_read_slow_ms: 5,
    },
    results: { retention_ms: 600_000, cache_bytes: 64 * MiB },
    memory: {
      idle_reclaim_ms: 500,
      collect_after_output_bytes: 64 * MiB,
      max_inflight_requests: 1024,
      buffer_pool_size: 4,
    },
    network: {
      exclude_interfaces: ['lo', 'veth*', 'docker*', 'virbr*', 'br-*'],
      backend: 'auto',
      confirm_timeout_ms: 60_000,
      max_confirm_timeout_ms: 600_000,
      command_timeout_ms: 30_000,
      state_file: '/var/lib/limiquantix/network-pending.json',
      netplan_dir: '/etc/netplan',
      nm_connections_dir: '/etc/NetworkManager/system-connections',
      networkd_dir: '/etc/systemd/network',
      interfaces_file: '/etc/network/interfaces',
    },
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
      netplan: '/usr/sbin/netplan',
      nmcli: '/usr/bin/nmcli',
      networkctl: '/usr/bin/networkctl',
      ifup: '/sbin/ifup',
      ifdown: '/sbin/ifdown',
    },
    system: {
      passwd_file: '/etc/passwd',
      group_file: '/etc/group',
      os_release_file: '/etc/os-release',
      proc_dir: '/proc',
    },
    windows: {
      cmd: 'C:\\Windows\\System32\\cmd.exe',
      powershell: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
      shutdown: 'C:\\Windows\\System32\\shutdown.exe',
      w32tm: 'C:\\Windows\\System32\\w32tm.exe',
      net: 'C:\\Windows\\System32\\net.exe',
      taskkill: 'C:\\Windows\\System32\\taskkill.exe',
      default_cwd: 'C:\\Windows\\System32',
      allow_unc_paths: false,
      owner_lookup: true,
      owner_timeout_ms: 20_000,
      owner_max_output_bytes: 4 * MiB,
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
