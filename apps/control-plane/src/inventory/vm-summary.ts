import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { VmSummaryView } from '@lq/api';
import type { NetworkInterface, VM } from '@lq/proto';
import type { NodeView } from '../inventory/inventory.types.js';
import { isOutdated } from './vm.view.js';

function iso(t: Timestamp | undefined): string | null {
  return t ? timestampDate(t).toISOString() : null;
}

const LOOPBACK = /^(127\.|::1$)/;

export function addressesOf(interfaces: NetworkInterface[]): string[] {
  const out: string[] = [];
  for (const i of interfaces) {
    if (i.name === 'lo') {
      continue;
    }
    for (const cidr of [...i.ipv4, ...i.ipv6]) {
      const address = cidr.split('/')[0] ?? cidr;
      if (!LOOPBACK.test(address) && !out.includes(address)) {
        out.push(address);
      }
    }
  }
  return out;
}

export function osLabel(vm: VM): string {
  const os = vm.os;
  if (!os) {
    return '';
  }
  return os.prettyName || [os.name, os.version].filter(Boolean).join(' ');
}

export function summarizeVm(
  vm: VM,
  nodes: ReadonlyMap<string, NodeView>,
  connectedSince: string | null = null,
  latestAgent: string | null = null,
): VmSummaryView {
  const t = vm.telemetry;
  // Telemetry carries the current addresses; the agent's facts those of its last sync.
  const current = t && t.interfaces.length > 0 ? t.interfaces : vm.interfaces;
  return {
    id: vm.id,
    name: vm.name,
    hostname: vm.hostname,
    project_id: vm.projectId || 'default',
    node_id: vm.nodeId,
    node_stale: nodes.get(vm.nodeId)?.stale ?? true,
    agent_state: vm.agentState,
    agent_version: vm.agentVersion,
    agent_target: vm.agentTarget,
    agent_outdated: isOutdated(vm.agentVersion, latestAgent),
    os: osLabel(vm),
    ips: addressesOf(current),
    cpu_percent: t ? Math.round(t.cpuPercent * 10) / 10 : null,
    memory_used_bytes: t?.memory ? Number(t.memory.usedBytes) : null,
    memory_total_bytes: t?.memory ? Number(t.memory.totalBytes) : null,
    connected_since: vm.agentState === 'ready' ? connectedSince : null,
    last_seen: iso(vm.lastSeen),
    telemetry_at: iso(vm.telemetryAt),
  };
}
