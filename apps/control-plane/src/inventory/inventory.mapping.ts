import { create, fromJson, toJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  AgentState,
  AgentUpdateResultSchema,
  NetworkInterfaceSchema,
  OsInfoSchema,
  TelemetryReportSchema,
  VMSchema,
  type NetworkInterface,
  type VM,
  type VmAgentStatus,
} from '@lq/proto';
import type { NodeView } from './inventory.types.js';

/** What vms.agent_state holds; 'gone' when the VM left its node's heartbeat. */
export type AgentStateName = 'ready' | 'connecting' | 'disconnected' | 'gone';

// Facts are stored as proto3 JSON; newer fields written by a newer replica must not break reads.
const READ = { ignoreUnknownFields: true };
const INT4_MAX = 2_147_483_647;
/** Longest VM name stored (a display name; libvirt's own limit is far above any use). */
export const VM_NAME_MAX_CHARS = 256;

export function agentStateName(state: AgentState): Exclude<AgentStateName, 'gone'> {
  switch (state) {
    case AgentState.READY:
      return 'ready';
    case AgentState.CONNECTING:
      return 'connecting';
    case AgentState.DISCONNECTED:
    case AgentState.UNSPECIFIED:
      return 'disconnected';
    default:
      // An enum value from a newer daemon: not serving requests as far as we know.
      return 'disconnected';
  }
}

/** The agent state an event kind implies, for events that carry no status. */
export function agentStateOfEventKind(kind: string): Exclude<AgentStateName, 'gone'> | undefined {
  switch (kind) {
    case 'ready':
      return 'ready';
    case 'connected':
      return 'connecting';
    case 'disconnected':
      return 'disconnected';
    default:
      return undefined;
  }
}

/**
 * One element of the jsonb array the VM upsert reads with jsonb_to_recordset. `os` is absent
 * exactly when the status carries no agent facts (the agent never synced): the upsert then
 * keeps the facts already stored instead of blanking them.
 */
export interface VmUpsertRow {
  id: string;
  node_id: string;
  /** '' when the node reports none: the stored name is kept. */
  name: string;
  agent_state: Exclude<AgentStateName, 'gone'>;
  agent_version: string;
  agent_target: string;
  /** Absent when the status carries none: the stored one is kept. */
  agent_last_update?: JsonValue;
  capabilities: string[];
  hostname: string;
  os?: JsonValue;
  interfaces: JsonValue[];
  connected_since?: string;
  last_seen_at?: string;
}

export function interfacesJson(list: readonly NetworkInterface[]): JsonValue[] {
  return list.map((i) => toJson(NetworkInterfaceSchema, i));
}

function iso(ts: Timestamp | undefined): string | undefined {
  return ts ? timestampDate(ts).toISOString() : undefined;
}

/** A timestamp from the wire, or now when the sender left it unset. */
export function dateOr(ts: Timestamp | undefined, now: Date): Date {
  return ts ? timestampDate(ts) : now;
}

/** A display name as stored: control characters out, at most VM_NAME_MAX_CHARS. */
export function vmName(name: string): string {
  // eslint-disable-next-line no-control-regex
  return [...name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '')]
    .slice(0, VM_NAME_MAX_CHARS)
    .join('');
}

export function vmUpsertRow(nodeId: string, status: VmAgentStatus): VmUpsertRow {
  const info = status.info;
  const row: VmUpsertRow = {
    id: status.vmId,
    node_id: nodeId,
    name: vmName(status.name),
    agent_state: agentStateName(status.state),
    agent_version: status.agentVersion || info?.agentVersion || '',
    agent_target: info?.agentTarget ?? '',
    capabilities:
      status.capabilities.length > 0 ? [...status.capabilities] : [...(info?.capabilities ?? [])],
    hostname: info?.hostname ?? '',
    interfaces: interfacesJson(info?.interfaces ?? []),
    connected_since: iso(status.connectedSince),
    last_seen_at: iso(status.lastSeen),
  };
  if (info) {
    row.os = toJson(OsInfoSchema, info.os ?? create(OsInfoSchema));
    if (info.lastUpdate) {
      row.agent_last_update = toJson(AgentUpdateResultSchema, info.lastUpdate);
    }
  }
  return row;
}

/** Rows for one upsert: one per VM id (the last wins), in id order so concurrent upserts lock alike. */
export function vmUpsertRows(nodeId: string, statuses: readonly VmAgentStatus[]): VmUpsertRow[] {
  const byId = new Map<string, VmUpsertRow>();
  for (const s of statuses) {
    byId.set(s.vmId, vmUpsertRow(nodeId, s));
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Clamps a uint32 from the wire into a PostgreSQL integer. */
export function int4(n: number): number {
  return Math.min(Math.max(Math.trunc(n), 0), INT4_MAX);
}

/** A vms row as SELECTed (pg parses jsonb and timestamptz). */
export interface VmRecord {
  id: string;
  node_id: string;
  name?: string;
  agent_state: string;
  agent_version: string;
  agent_target?: string;
  agent_last_update?: JsonValue | null;
  capabilities: string[] | null;
  hostname: string;
  os: JsonValue | null;
  interfaces: JsonValue[] | null;
  last_seen_at: Date | null;
  telemetry: JsonValue | null;
  telemetry_at: Date | null;
  project_id?: string;
  labels?: Record<string, string>;
}

export function vmFromRecord(r: VmRecord): VM {
  return create(VMSchema, {
    id: r.id,
    nodeId: r.node_id,
    name: r.name ?? '',
    agentState: r.agent_state,
    agentVersion: r.agent_version,
    agentTarget: r.agent_target ?? '',
    agentLastUpdate:
      r.agent_last_update === null || r.agent_last_update === undefined
        ? undefined
        : fromJson(AgentUpdateResultSchema, r.agent_last_update, READ),
    capabilities: r.capabilities ?? [],
    hostname: r.hostname,
    os: r.os === null ? undefined : fromJson(OsInfoSchema, r.os, READ),
    interfaces: (r.interfaces ?? []).map((i) => fromJson(NetworkInterfaceSchema, i, READ)),
    lastSeen: r.last_seen_at ? timestampFromDate(r.last_seen_at) : undefined,
    telemetry:
      r.telemetry === null ? undefined : fromJson(TelemetryReportSchema, r.telemetry, READ),
    telemetryAt: r.telemetry_at ? timestampFromDate(r.telemetry_at) : undefined,
    projectId: r.project_id ?? '',
    labels: r.labels ?? {},
  });
}

/** A nodes row as SELECTed. */
export interface NodeRecord {
  id: string;
  hostname: string;
  daemon_version: string;
  last_heartbeat_at: Date;
  file_chunk_max_bytes: number;
  vm_count: number;
}

export function nodeViewFromRecord(r: NodeRecord, nowMs: number, staleMs: number): NodeView {
  return {
    id: r.id,
    hostname: r.hostname,
    daemonVersion: r.daemon_version,
    lastHeartbeatAt: r.last_heartbeat_at.toISOString(),
    stale: nowMs - r.last_heartbeat_at.getTime() > staleMs,
    vmCount: r.vm_count,
    fileChunkMaxBytes: r.file_chunk_max_bytes,
  };
}

/**
 * The node and VM ids a subject names (PROTOCOL.md §9): lq.v1.node.<node>.heartbeat,
 * lq.v1.events.<node>.<vm>.<kind>, lq.v1.telemetry.<node>.<vm>. The subscriber accepts a
 * payload only when its ids match its subject, since NATS permissions are granted per subject.
 */
export function idsOfSubject(subject: string): { nodeId?: string; vmId?: string } {
  const t = subject.split('.');
  if (t[0] !== 'lq' || t[1] !== 'v1') {
    return {};
  }
  switch (t[2]) {
    case 'node':
      return t.length === 5 && t[4] === 'heartbeat' ? { nodeId: t[3] } : {};
    case 'events':
      return t.length === 6 ? { nodeId: t[3], vmId: t[4] } : {};
    case 'telemetry':
      return t.length === 5 ? { nodeId: t[3], vmId: t[4] } : {};
    default:
      return {};
  }
}
