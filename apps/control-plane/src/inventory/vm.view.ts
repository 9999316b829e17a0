import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type {
  AgentUpdateResultView,
  NetworkInterfaceView,
  NodeView as NodeApiView,
  OsInfoView,
  TelemetryEventView,
  TelemetryView,
  VmView,
} from '@lq/api';
import {
  compareVersions,
  type AgentUpdateResult,
  type NetworkInterface,
  type OsInfo,
  type TelemetryReport,
  type VM,
  type VmTelemetry,
} from '@lq/proto';
import type { NodeView } from './inventory.types.js';

// The inventory as REST shows it (@lq/api), built field by field from the proto messages: a
// renamed proto field breaks this file's type-check instead of the API's JSON, and REST keeps
// snake_case and every field (null or '' when unknown) whatever proto3 JSON would leave out.
// Connect (`/limiquantix.compute.v1.VMService/*`) keeps proto3 JSON.

function iso(t: Timestamp | undefined): string | null {
  return t ? timestampDate(t).toISOString() : null;
}

export function osInfoView(os: OsInfo): OsInfoView {
  return {
    name: os.name,
    version: os.version,
    id: os.id,
    pretty_name: os.prettyName,
    kernel_release: os.kernelRelease,
    kernel_version: os.kernelVersion,
    arch: os.arch,
  };
}

export function networkInterfaceView(i: NetworkInterface): NetworkInterfaceView {
  return { name: i.name, mac: i.mac, ipv4: [...i.ipv4], ipv6: [...i.ipv6] };
}

export function telemetryView(t: TelemetryReport): TelemetryView {
  const m = t.memory;
  return {
    cpu_percent: t.cpuPercent,
    cpu_count: t.cpuCount,
    load1: t.load1,
    load5: t.load5,
    load15: t.load15,
    memory: m
      ? {
          total_bytes: Number(m.totalBytes),
          used_bytes: Number(m.usedBytes),
          available_bytes: Number(m.availableBytes),
          swap_total_bytes: Number(m.swapTotalBytes),
          swap_used_bytes: Number(m.swapUsedBytes),
        }
      : null,
    disks: t.disks.map((d) => ({
      mount_point: d.mountPoint,
      device: d.device,
      fs_type: d.fsType,
      total_bytes: Number(d.totalBytes),
      used_bytes: Number(d.usedBytes),
      available_bytes: Number(d.availableBytes),
    })),
    network: t.network.map((n) => ({
      name: n.name,
      rx_bytes: Number(n.rxBytes),
      tx_bytes: Number(n.txBytes),
      rx_packets: Number(n.rxPackets),
      tx_packets: Number(n.txPackets),
    })),
    process_count: t.processCount,
    uptime_seconds: t.uptimeSeconds,
    interfaces: t.interfaces.map(networkInterfaceView),
  };
}

/** Older than the newest release on offer (unknown versions are not called outdated). */
export function isOutdated(version: string, latest: string | null | undefined): boolean {
  return !!version && !!latest && compareVersions(version, latest) < 0;
}

export function agentUpdateResultView(r: AgentUpdateResult): AgentUpdateResultView {
  return {
    update_id: r.updateId,
    from_version: r.fromVersion,
    to_version: r.toVersion,
    result: r.result,
    reason: r.reason,
    at: iso(r.at),
  };
}

/**
 * GET /api/vms/:id and each VM of GET /api/vms; `latest` is the newest agent release on offer
 * (GET /api/agent/releases), against which the agent is outdated.
 */
export function vmView(vm: VM, latest?: string | null): VmView {
  return {
    id: vm.id,
    name: vm.name,
    node_id: vm.nodeId,
    project_id: vm.projectId || 'default',
    agent_state: vm.agentState,
    agent_version: vm.agentVersion,
    agent_target: vm.agentTarget,
    agent_outdated: isOutdated(vm.agentVersion, latest),
    agent_last_update: vm.agentLastUpdate ? agentUpdateResultView(vm.agentLastUpdate) : null,
    capabilities: [...vm.capabilities],
    hostname: vm.hostname,
    os: vm.os ? osInfoView(vm.os) : null,
    interfaces: vm.interfaces.map(networkInterfaceView),
    last_seen: iso(vm.lastSeen),
    telemetry: vm.telemetry ? telemetryView(vm.telemetry) : null,
    telemetry_at: iso(vm.telemetryAt),
    labels: { ...vm.labels },
  };
}

/** One `event: telemetry` of GET /api/vms/:id/telemetry/stream. */
export function telemetryEventView(t: VmTelemetry): TelemetryEventView {
  return {
    node_id: t.nodeId,
    vm_id: t.vmId,
    timestamp: iso(t.timestamp),
    report: t.report ? telemetryView(t.report) : null,
  };
}

/** Each node of GET /api/nodes. */
export function nodeView(n: NodeView): NodeApiView {
  return {
    id: n.id,
    hostname: n.hostname,
    daemon_version: n.daemonVersion,
    last_heartbeat_at: n.lastHeartbeatAt,
    stale: n.stale,
    vm_count: n.vmCount,
    file_chunk_max_bytes: n.fileChunkMaxBytes,
  };
}
