import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import type { NetworkInterface, VM } from '@lq/proto';
import type { NodeView } from '../inventory/inventory.types.js';

/** One row of the console's VM list: what the list shows, not the VM's whole record. */
export interface VmSummary {
  id: string;
  /** What its node calls it (the libvirt domain name; not unique), '' when none. */
  name: string;
  hostname: string;
  projectId: string;
  nodeId: string;
  /** The node's heartbeat is older than LQ_NODE_STALE_MS (or the node is unknown). */
  nodeStale: boolean;
  /** ready, connecting, disconnected or gone (as the inventory stores it). */
  agentState: string;
  agentVersion: string;
  os: string;
  /** Addresses without their prefix length; loopback left out. */
  ips: string[];
  cpuPercent: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
  /** When the agent's current connection began (null while not connected). */
  connectedSince: string | null;
  lastSeen: string | null;
  telemetryAt: string | null;
}

/** What GET /api/vms/stream sends as each `event: vms`. */
export interface VmListSnapshot {
  vms: VmSummary[];
}

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
): VmSummary {
  const t = vm.telemetry;
  // Telemetry carries the current addresses; the agent's facts those of its last sync.
  const current = t && t.interfaces.length > 0 ? t.interfaces : vm.interfaces;
  return {
    id: vm.id,
    name: vm.name,
    hostname: vm.hostname,
    projectId: vm.projectId || 'default',
    nodeId: vm.nodeId,
    nodeStale: nodes.get(vm.nodeId)?.stale ?? true,
    agentState: vm.agentState,
    agentVersion: vm.agentVersion,
    os: osLabel(vm),
    ips: addressesOf(current),
    cpuPercent: t ? Math.round(t.cpuPercent * 10) / 10 : null,
    memoryUsedBytes: t?.memory ? Number(t.memory.usedBytes) : null,
    memoryTotalBytes: t?.memory ? Number(t.memory.totalBytes) : null,
    connectedSince: vm.agentState === 'ready' ? connectedSince : null,
    lastSeen: iso(vm.lastSeen),
    telemetryAt: iso(vm.telemetryAt),
  };
}
