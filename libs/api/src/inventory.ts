import type { AgentUpdateResultView } from './agent.js';
// The inventory as REST shows it: VMs, their facts and telemetry, nodes, the console's live list.
// snake_case, every field present (null or '' when unknown), 64-bit counters as numbers. Not
// the proto3 JSON of Connect (`/limiquantix.compute.v1.VMService/*`), which keeps camelCase.

/** ready, connecting, disconnected or gone (left its node's heartbeat), as the inventory keeps it. */
export type AgentState = string;

/** What the guest's os-release and uname say. */
export interface OsInfoView {
  /** os-release NAME, e.g. "Debian GNU/Linux". */
  name: string;
  /** os-release VERSION_ID, e.g. "12". */
  version: string;
  /** os-release ID, e.g. "debian". */
  id: string;
  pretty_name: string;
  /** uname -r */
  kernel_release: string;
  /** uname -v */
  kernel_version: string;
  /** uname -m, e.g. "x86_64". */
  arch: string;
}

export interface NetworkInterfaceView {
  name: string;
  mac: string;
  /** CIDR notation, e.g. "10.0.0.5/24". */
  ipv4: string[];
  ipv6: string[];
}

export interface MemoryView {
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
  swap_total_bytes: number;
  swap_used_bytes: number;
}

export interface DiskUsageView {
  mount_point: string;
  device: string;
  fs_type: string;
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
}

/** Traffic counters of one interface since boot. */
export interface InterfaceCountersView {
  name: string;
  rx_bytes: number;
  tx_bytes: number;
  rx_packets: number;
  tx_packets: number;
}

/** One telemetry report of a guest. */
export interface TelemetryView {
  /** CPU busy share over the last interval, 0–100 across all CPUs. */
  cpu_percent: number;
  cpu_count: number;
  load1: number;
  load5: number;
  load15: number;
  memory: MemoryView | null;
  disks: DiskUsageView[];
  network: InterfaceCountersView[];
  process_count: number;
  uptime_seconds: number;
  /** Current addresses (they change without a new sync). */
  interfaces: NetworkInterfaceView[];
}

/** GET /api/vms/:id, and each of GET /api/vms's `vms`. */
export interface VmView {
  /** Unique across the cluster (a libvirt domain's UUID, or its node's name for it). */
  id: string;
  /** What its node calls it (the libvirt domain name; not unique), '' when none. */
  name: string;
  /** The node that owns it: its guest operations go there. */
  node_id: string;
  project_id: string;
  agent_state: AgentState;
  agent_version: string;
  /** The agent's build target (linux-amd64, …), '' when unknown. */
  agent_target: string;
  /** Older than the newest agent release the control plane offers. */
  agent_outdated: boolean;
  /** How the agent's last self-update ended; null when none was reported. */
  agent_last_update: AgentUpdateResultView | null;
  capabilities: string[];
  hostname: string;
  os: OsInfoView | null;
  /** The addresses of the agent's last sync (telemetry.interfaces are newer). */
  interfaces: NetworkInterfaceView[];
  /** ISO 8601, null when never seen. */
  last_seen: string | null;
  telemetry: TelemetryView | null;
  telemetry_at: string | null;
  labels: Record<string, string>;
}

/** GET /api/vms */
export interface VmListView {
  vms: VmView[];
}

/** `event: telemetry` of GET /api/vms/:id/telemetry/stream */
export interface TelemetryEventView {
  node_id: string;
  vm_id: string;
  /** ISO 8601, when the guest took the report. */
  timestamp: string | null;
  report: TelemetryView | null;
}

/** One of GET /api/nodes's `nodes`. */
export interface NodeView {
  id: string;
  hostname: string;
  daemon_version: string;
  last_heartbeat_at: string;
  /** The heartbeat is older than LQ_NODE_STALE_MS. */
  stale: boolean;
  vm_count: number;
  /** Largest file chunk the node's daemon relays. */
  file_chunk_max_bytes: number;
}

/** GET /api/nodes */
export interface NodeListView {
  nodes: NodeView[];
}

/** One row of the console's VM list (GET /api/vms/stream): what the list shows. */
export interface VmSummaryView {
  id: string;
  /** The libvirt domain name (not unique; the id is), '' when none. */
  name: string;
  hostname: string;
  project_id: string;
  node_id: string;
  /** The node's heartbeat is older than LQ_NODE_STALE_MS (or the node is unknown). */
  node_stale: boolean;
  agent_state: AgentState;
  agent_version: string;
  agent_target: string;
  /** Older than the newest agent release the control plane offers. */
  agent_outdated: boolean;
  /** PRETTY_NAME, else NAME VERSION_ID, '' when unknown. */
  os: string;
  /** Addresses without their prefix length; loopback left out. */
  ips: string[];
  cpu_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  /** When the agent's current connection began (null while not connected). */
  connected_since: string | null;
  last_seen: string | null;
  telemetry_at: string | null;
}

/** `event: vms` of GET /api/vms/stream */
export interface VmListSnapshotView {
  vms: VmSummaryView[];
}

/** `event: error` of GET /api/vms/stream: the inventory could not be read. */
export interface VmListErrorView {
  code: string;
  message: string;
}

/** GET /api/vms/:id/agent-session */
export interface AgentSessionView {
  vm_id: string;
  agent_state: AgentState;
  connected_since: string | null;
}

/** PUT /api/vms/:id/labels (the body and the answer). */
export interface VmLabelsView {
  vm_id: string;
  labels: Record<string, string>;
}

/** PUT /api/vms/:id/project */
export interface VmProjectView {
  vm_id: string;
  project: string;
}

/** PUT /api/vms/:id/node */
export interface VmNodeView {
  vm_id: string;
  node: string;
  previous_node: string;
}
