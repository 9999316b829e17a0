// The shapes of the control plane's REST answers the console reads (README: the control plane).

export interface Binding {
  role: string;
  /** A project id, or '*' for every project. */
  project: string;
  restrictions: { exec_non_root?: boolean; exec_users?: string[] };
}

/** GET /api/auth/me */
export interface Me {
  user_id: string;
  username: string;
  auth_method: string;
  api_key?: string | null;
  bindings: Binding[];
  /** Each permission the caller holds: 'all' projects, or the projects where it holds it. */
  permissions: Record<string, 'all' | string[]>;
}

/** POST /api/auth/login and /refresh */
export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
}

/** One row of GET /api/vms/stream (`event: vms`). */
export interface VmSummary {
  id: string;
  /** The libvirt domain name (not unique; the id is), '' when none. */
  name: string;
  hostname: string;
  projectId: string;
  nodeId: string;
  nodeStale: boolean;
  agentState: string;
  agentVersion: string;
  os: string;
  ips: string[];
  cpuPercent: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
  /** When the agent's current connection began (null while not connected). */
  connectedSince: string | null;
  lastSeen: string | null;
  telemetryAt: string | null;
}

export interface OsInfo {
  name?: string;
  version?: string;
  id?: string;
  prettyName?: string;
  kernelRelease?: string;
  kernelVersion?: string;
  arch?: string;
}

export interface NetworkInterface {
  name?: string;
  mac?: string;
  ipv4?: string[];
  ipv6?: string[];
}

/** proto3 JSON: 64-bit integers arrive as strings. */
export type Int64 = string | number;

export interface TelemetryReport {
  cpuPercent?: number;
  cpuCount?: number;
  load1?: number;
  load5?: number;
  load15?: number;
  memory?: {
    totalBytes?: Int64;
    usedBytes?: Int64;
    availableBytes?: Int64;
    swapTotalBytes?: Int64;
    swapUsedBytes?: Int64;
  };
  disks?: Array<{
    mountPoint?: string;
    device?: string;
    fsType?: string;
    totalBytes?: Int64;
    usedBytes?: Int64;
    availableBytes?: Int64;
  }>;
  network?: Array<{ name?: string; rxBytes?: Int64; txBytes?: Int64 }>;
  processCount?: number;
  uptimeSeconds?: number;
  interfaces?: NetworkInterface[];
}

/** GET /api/vms/:id (proto3 JSON of limiquantix.compute.v1.VM) */
export interface Vm {
  id: string;
  nodeId?: string;
  agentState?: string;
  agentVersion?: string;
  capabilities?: string[];
  hostname?: string;
  os?: OsInfo;
  interfaces?: NetworkInterface[];
  lastSeen?: string;
  telemetry?: TelemetryReport;
  telemetryAt?: string;
  projectId?: string;
}

/** `event: telemetry` of GET /api/vms/:id/telemetry/stream */
export interface VmTelemetry {
  nodeId?: string;
  vmId?: string;
  timestamp?: string;
  report?: TelemetryReport;
}

/** POST /api/vms/:id/execute */
export interface ExecuteResult {
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

/** One row of GET /api/audit/executions */
export interface ExecutionView {
  seq: number;
  request_id: string;
  started_at: string;
  ended_at: string | null;
  actor: string;
  auth_method: string;
  source_ip: string;
  vm_id: string | null;
  node_id: string | null;
  project_id: string | null;
  command: string | null;
  argv: string[] | null;
  run_as_user: string | null;
  run_as_group: string | null;
  status: string | null;
  exit_code: number | null;
  duration_ms: number | null;
  error: string | null;
  stdout: string | null;
  stderr: string | null;
  stdout_truncated: boolean | null;
  stderr_truncated: boolean | null;
  stdout_bytes: number | null;
  stderr_bytes: number | null;
}

/** One row of GET /api/audit/events */
export interface AuditEventView {
  seq: number;
  at: string;
  kind: string;
  request_id: string;
  actor: string;
  auth_method: string;
  source_ip: string;
  vm_id: string | null;
  node_id: string | null;
  project_id: string | null;
  operation: string;
  params: unknown;
  status: string | null;
  exit_code: number | null;
  duration_ms: number | null;
  error: string | null;
}

/** GET /api/audit/verify */
export interface VerifyReport {
  ok: boolean;
  rows: number;
  last_seq: number | null;
  first_broken?: { seq: number; reason: string };
  output_mismatches?: string[];
  duration_ms: number;
}
