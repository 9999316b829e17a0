// The telemetry history and the fleet dashboard: GET /api/vms/:id/telemetry and
// GET /api/fleet/summary.

/** Which stored resolution a series comes from (LQ_TELEMETRY_FINE_* / LQ_TELEMETRY_COARSE_*). */
export type TelemetryResolution = 'fine' | 'coarse';

/** One point of a VM's history: the reports of one step, averaged. */
export interface TelemetryPointView {
  /** Start of the step (ISO 8601). */
  t: string;
  /** Reports the point aggregates. */
  samples: number;
  /** CPU busy share, 0–100: the step's average and its highest report. */
  cpu_percent: number;
  cpu_max_percent: number;
  load1: number;
  /** Average memory in use, and the total at the step's last report. */
  memory_used_bytes: number;
  memory_total_bytes: number;
  /** memory_used_bytes / memory_total_bytes × 100; null without a total. */
  memory_percent: number | null;
  /** All filesystems together, at the step's last report. */
  disk_used_bytes: number;
  disk_total_bytes: number;
  /** The fullest filesystem's use, 0–100. */
  disk_max_percent: number;
  /** Bytes per second over the step, all interfaces but loopback; null with one report or a counter reset. */
  net_rx_bytes_per_second: number | null;
  net_tx_bytes_per_second: number | null;
}

/** GET /api/vms/:id/telemetry */
export interface TelemetrySeriesView {
  vm_id: string;
  from: string;
  to: string;
  resolution: TelemetryResolution;
  step_seconds: number;
  /** Oldest first; steps without reports are absent (gaps). */
  points: TelemetryPointView[];
}

/** A VM of a top list: its latest point. */
export interface FleetVmView {
  id: string;
  name: string;
  node_id: string;
  project_id: string;
  /** Start of the point's step (ISO 8601). */
  at: string;
  cpu_percent: number;
  memory_percent: number | null;
  memory_used_bytes: number;
  disk_max_percent: number;
  /** Received + sent bytes per second; null when not known yet. */
  net_bytes_per_second: number | null;
}

/** A filesystem at or above the threshold, from the VM's latest report. */
export interface FullDiskView {
  vm_id: string;
  vm_name: string;
  node_id: string;
  project_id: string;
  mount_point: string;
  used_bytes: number;
  total_bytes: number;
  used_percent: number;
}

export interface CountView {
  key: string;
  count: number;
}

/** GET /api/fleet/summary: the dashboard's aggregates over the VMs the caller may read. */
export interface FleetSummaryView {
  generated_at: string;
  /** VMs in scope, gone ones included. */
  vms: number;
  /** VMs that reported within the last few steps (they alone are in the top lists). */
  reporting: number;
  /** By agent state (ready, connecting, disconnected, gone…), most first. */
  by_agent_state: CountView[];
  /** VMs that are not gone by agent version ('' : never reported), most first. */
  by_agent_version: CountView[];
  /** The `top` busiest VMs by each measure, highest first. */
  top: {
    cpu: FleetVmView[];
    memory: FleetVmView[];
    disk: FleetVmView[];
    network: FleetVmView[];
  };
  disk_threshold_percent: number;
  /** VMs with at least one filesystem at or above the threshold. */
  full_disk_vms: number;
  /** Those filesystems, fullest first, at most `top`. */
  full_disks: FullDiskView[];
}
