// Guest operations over REST: POST/GET /api/vms/:id/{ping,execute,shutdown,quiesce,thaw,…},
// the request bodies (snake_case, as the seed's curls send them) and the answers.

import type { NetworkInterfaceView, OsInfoView } from './inventory.js';

/** The fields of POST /api/vms/:id/execute, /executions and (with a target) /api/runs. */
export interface ExecuteBody {
  /** A shell command line (the agent's shell -c); exclusive with argv. */
  command?: string;
  /** Program and arguments, no shell. */
  argv?: string[];
  /** Appended to argv. */
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  /** Binary stdin; exclusive with stdin. */
  stdin_base64?: string;
  timeout_seconds?: number;
  run_as_user?: string;
  run_as_group?: string;
  include_supplementary_groups?: boolean;
  /** Per-stream capture cap in bytes (0: the agent's default). */
  output_limit_bytes?: number;
  /** Names of env entries whose values the audit trail redacts. */
  secret_env?: string[];
}

/** POST /api/vms/:id/ping */
export interface PingView {
  vm_id: string;
  agent_version: string;
  uptime_seconds: number;
  latency_ms: number;
}

/** POST /api/vms/:id/execute */
export interface ExecuteResultView {
  vm_id: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  stdout_total_bytes: number;
  stderr_total_bytes: number;
  duration_ms: number;
}

export type ShutdownMode = 'poweroff' | 'reboot' | 'halt';

/** POST /api/vms/:id/shutdown (body) */
export interface ShutdownBody {
  mode?: ShutdownMode;
  delay_seconds?: number;
}

/** POST /api/vms/:id/shutdown (202) */
export interface ShutdownView {
  vm_id: string;
  mode: ShutdownMode;
  /** ISO 8601; absent when the agent did not say. */
  scheduled_at?: string;
}

/** One freeze or thaw hook that ran. */
export interface HookView {
  name: string;
  phase: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  duration_ms: number;
}

/** POST /api/vms/:id/quiesce (body) */
export interface QuiesceBody {
  mount_points?: string[];
  timeout_seconds?: number;
}

/** POST /api/vms/:id/quiesce */
export interface QuiesceView {
  vm_id: string;
  frozen: string[];
  thaw_deadline: string | null;
  hooks: HookView[];
}

/** POST /api/vms/:id/thaw */
export interface ThawView {
  vm_id: string;
  was_frozen: boolean;
  thawed: string[];
  hooks: HookView[];
}

/** GET /api/vms/:id/quiesce */
export interface QuiesceStatusView {
  vm_id: string;
  frozen: boolean;
  mount_points: string[];
  frozen_at: string | null;
  thaw_deadline: string | null;
  last_auto_thaw: string | null;
}

/** POST /api/vms/:id/sync-time */
export interface SyncTimeView {
  vm_id: string;
  method: string;
  offset_before_ms: number | null;
  offset_after_ms: number | null;
  rtc_error: string | null;
}

/** POST /api/vms/:id/password */
export interface PasswordSetView {
  vm_id: string;
  username: string;
  result: 'password set';
}

export interface FilesystemView {
  mount_point: string;
  device: string;
  fs_type: string;
  total_bytes: number;
  used_bytes: number;
  read_only: boolean;
  freezable: boolean;
}

/** GET /api/vms/:id/filesystems */
export interface FilesystemsView {
  vm_id: string;
  filesystems: FilesystemView[];
}

/** GET /api/vms/:id/os */
export interface GuestOsView {
  vm_id: string;
  os: OsInfoView | null;
  hostname: string | null;
}

/** GET /api/vms/:id/interfaces */
export interface GuestInterfacesView {
  vm_id: string;
  interfaces: NetworkInterfaceView[];
}

/** GET /api/vms/:id/files/stat */
export interface FileStatView {
  vm_id: string;
  path: string;
  type:
    'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'char_device' | 'block_device' | 'other';
  size: number;
  /** Permission bits in octal, e.g. "0644" (set-id and sticky bits included). */
  mode: string;
  uid: number;
  gid: number;
  /** The owner's and group's names in the guest, null when it has none. */
  owner: string | null;
  group: string | null;
  accessed_at: string | null;
  modified_at: string | null;
  changed_at: string | null;
  links: number;
  /** What a symbolic link points to (with no_follow). */
  link_target: string | null;
}

/** PUT /api/vms/:id/files */
export interface FileWrittenView {
  vm_id: string;
  path: string;
  /** Bytes received. */
  bytes: number;
  /** The file's size in the guest afterwards. */
  size: number;
}

/** One entry of a guest directory (GET /api/vms/:id/files/list). */
export interface FileEntryView {
  name: string;
  type: FileStatView['type'];
  size: number;
  /** Permission bits in octal, e.g. "0755". */
  mode: string;
  uid: number;
  gid: number;
  owner: string | null;
  group: string | null;
  modified_at: string | null;
  /** What a symbolic link points to; links are never followed in a listing. */
  link_target: string | null;
}

/** GET /api/vms/:id/files/list?path=&cursor=&limit= */
export interface FileListView {
  vm_id: string;
  path: string;
  /** The directory with its links resolved. */
  resolved_path: string;
  /** Sorted by name. */
  entries: FileEntryView[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
  /** Entries in the directory when this page was read. */
  total_entries: number;
}

/** POST /api/vms/:id/files/mkdir */
export interface FileMkdirBody {
  path: string;
  /** Octal permission bits, e.g. "0750"; default 0755. */
  mode?: string;
  /** Create missing parent directories too. */
  parents?: boolean;
}

/** POST /api/vms/:id/files/mkdir */
export interface DirectoryCreatedView {
  vm_id: string;
  path: string;
  /** What was created, outermost first. */
  created: string[];
}

/** DELETE /api/vms/:id/files?path=&recursive= */
export interface FileDeletedView {
  vm_id: string;
  path: string;
  /** Entries removed. */
  removed: number;
}

/** POST /api/vms/:id/files/rename */
export interface FileRenameBody {
  from: string;
  to: string;
  /** Replace an existing file at `to` (never a directory). */
  overwrite?: boolean;
}

/** POST /api/vms/:id/files/rename */
export interface FileRenamedView {
  vm_id: string;
  from: string;
  to: string;
}

/** A guest network stack the agent drives (PROTOCOL.md §11). */
export type NetworkBackendName = 'netplan' | 'networkmanager' | 'networkd' | 'ifupdown';

/** One interface's configuration, as read from or written to the guest's network stack. */
export interface InterfaceNetworkView {
  name: string;
  addressing: 'dhcp' | 'static';
  /** CIDR, static only. */
  addresses: string[];
  gateway: string | null;
  dns_servers: string[];
  search_domains: string[];
  /** null: the stack's default. */
  mtu: number | null;
}

/** A network apply: waiting for its confirmation, confirmed, or rolled back by the agent. */
export interface NetworkApplyView {
  apply_id: string;
  state: 'pending' | 'confirmed' | 'rolled_back';
  confirm_deadline: string | null;
  reason: string | null;
  changed_at: string | null;
  interfaces: string[];
}

/** GET /api/vms/:id/network */
export interface GuestNetworkView {
  vm_id: string;
  /** null: the agent found no network stack it can configure. */
  backend: NetworkBackendName | null;
  interfaces: InterfaceNetworkView[];
  /** The addresses the guest holds now. */
  live: NetworkInterfaceView[];
  config_files: string[];
  /** The pending apply, or how the last one ended. */
  last_apply: NetworkApplyView | null;
}

/** PUT /api/vms/:id/network's body. */
export interface NetworkConfigureBody {
  interfaces: {
    name: string;
    addressing: 'dhcp' | 'static';
    addresses?: string[];
    gateway?: string | null;
    dns_servers?: string[];
    search_domains?: string[];
    mtu?: number | null;
  }[];
  /** The agent rolls back unless confirmed within this (default: the agent's, 60 s). */
  confirm_timeout_seconds?: number;
  /** Only render the native files (the preview). */
  dry_run?: boolean;
  /** Leave the confirmation to POST /api/vms/:id/network/confirm. */
  manual_confirm?: boolean;
}

/** PUT /api/vms/:id/network */
export interface NetworkConfigureView {
  vm_id: string;
  /** confirmed: the guest reported the new addresses and keeps them; rolled_back: it did not,
   * and the agent restored the previous configuration; pending: manual_confirm; dry_run. */
  outcome: 'confirmed' | 'rolled_back' | 'pending' | 'dry_run';
  apply_id: string | null;
  backend: NetworkBackendName | null;
  /** The native files written (or, for a dry run, that would be). */
  files: { path: string; content: string }[];
  previous: InterfaceNetworkView[];
  interfaces: InterfaceNetworkView[];
  confirm_deadline: string | null;
  status: NetworkApplyView | null;
}
