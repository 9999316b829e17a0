import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  GetFleetSummaryResponseSchema,
  GetVMTelemetryResponseSchema,
  type FleetVmSchema,
  type GetFleetSummaryResponse,
  type GetVMTelemetryResponse,
} from '@lq/proto';
import type { FleetSummaryView, FleetVmView, TelemetrySeriesView } from '@lq/api';

// The dashboard's REST views (@lq/api) as VMService messages: one reading of the history,
// two shapes.

const ts = (iso: string) => timestampFromDate(new Date(iso));
const opt = (n: number | null) => (n === null ? undefined : n);
const u64 = (n: number) => BigInt(Math.max(0, Math.round(n)));

/** An ISO time for the service, from a request's Timestamp (undefined: the default). */
export function isoOf(t: Timestamp | undefined): string | undefined {
  return t ? timestampDate(t).toISOString() : undefined;
}

export function telemetryMessage(s: TelemetrySeriesView): GetVMTelemetryResponse {
  return create(GetVMTelemetryResponseSchema, {
    vmId: s.vm_id,
    from: ts(s.from),
    to: ts(s.to),
    resolution: s.resolution,
    stepSeconds: s.step_seconds,
    points: s.points.map((p) => ({
      t: ts(p.t),
      samples: p.samples,
      cpuPercent: p.cpu_percent,
      cpuMaxPercent: p.cpu_max_percent,
      load1: p.load1,
      memoryUsedBytes: u64(p.memory_used_bytes),
      memoryTotalBytes: u64(p.memory_total_bytes),
      memoryPercent: opt(p.memory_percent),
      diskUsedBytes: u64(p.disk_used_bytes),
      diskTotalBytes: u64(p.disk_total_bytes),
      diskMaxPercent: p.disk_max_percent,
      netRxBytesPerSecond: opt(p.net_rx_bytes_per_second),
      netTxBytesPerSecond: opt(p.net_tx_bytes_per_second),
    })),
  });
}

function fleetVm(v: FleetVmView): MessageInitShape<typeof FleetVmSchema> {
  return {
    id: v.id,
    name: v.name,
    nodeId: v.node_id,
    projectId: v.project_id,
    at: ts(v.at),
    cpuPercent: v.cpu_percent,
    memoryPercent: opt(v.memory_percent),
    memoryUsedBytes: u64(v.memory_used_bytes),
    diskMaxPercent: v.disk_max_percent,
    netBytesPerSecond: opt(v.net_bytes_per_second),
  };
}

export function fleetSummaryMessage(s: FleetSummaryView): GetFleetSummaryResponse {
  return create(GetFleetSummaryResponseSchema, {
    generatedAt: ts(s.generated_at),
    vms: s.vms,
    reporting: s.reporting,
    byAgentState: s.by_agent_state,
    byAgentVersion: s.by_agent_version,
    topCpu: s.top.cpu.map(fleetVm),
    topMemory: s.top.memory.map(fleetVm),
    topDisk: s.top.disk.map(fleetVm),
    topNetwork: s.top.network.map(fleetVm),
    diskThresholdPercent: s.disk_threshold_percent,
    fullDiskVms: s.full_disk_vms,
    fullDisks: s.full_disks.map((d) => ({
      vmId: d.vm_id,
      vmName: d.vm_name,
      nodeId: d.node_id,
      projectId: d.project_id,
      mountPoint: d.mount_point,
      usedBytes: u64(d.used_bytes),
      totalBytes: u64(d.total_bytes),
      usedPercent: d.used_percent,
    })),
  });
}
