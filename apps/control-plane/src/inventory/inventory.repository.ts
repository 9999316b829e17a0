import { Inject, Injectable } from '@nestjs/common';
import { toJson } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  TelemetryReportSchema,
  isSubjectToken,
  type AgentEvent,
  type NodeHeartbeat,
  type VM,
  type VmTelemetry,
} from '@lq/proto';
import { DataSource, type QueryRunner } from 'typeorm';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import {
  agentStateOfEventKind,
  dateOr,
  int4,
  interfacesJson,
  nodeViewFromRecord,
  vmFromRecord,
  vmUpsertRows,
  type NodeRecord,
  type VmRecord,
  type VmUpsertRow,
} from './inventory.mapping.js';
import type { NodeView, VmLocation } from './inventory.types.js';

// A heartbeat older than the stored one is ignored (replicas share the queue group, so two
// heartbeats of one node may be applied out of order), unless the daemon restarted: its clock
// may have gone back, and the next heartbeat heals a late one anyway. `restarted`: the node was
// known with another started_at (read before the statement writes: a CTE sees the old row).
const UPSERT_NODE = `
  WITH prev AS (SELECT started_at FROM nodes WHERE id = $1)
  INSERT INTO nodes (id, hostname, daemon_version, started_at, last_heartbeat_at,
                     file_chunk_max_bytes, vm_count)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (id) DO UPDATE SET
    hostname = EXCLUDED.hostname,
    daemon_version = EXCLUDED.daemon_version,
    started_at = EXCLUDED.started_at,
    last_heartbeat_at = EXCLUDED.last_heartbeat_at,
    file_chunk_max_bytes = EXCLUDED.file_chunk_max_bytes,
    vm_count = EXCLUDED.vm_count
  WHERE nodes.last_heartbeat_at <= EXCLUDED.last_heartbeat_at
     OR nodes.started_at IS DISTINCT FROM EXCLUDED.started_at
  RETURNING id, EXISTS (SELECT 1 FROM prev WHERE started_at IS DISTINCT FROM $4) AS restarted`;

// One statement for all the VMs of a heartbeat: the rows travel as one jsonb parameter. A row
// without `os` carries no agent facts, so the facts already stored are kept.
//
// A VM id belongs to one node. A row naming a VM another node owns changes nothing (the WHERE of
// the conflict clause), unless adoption is on ($2: a cut-off time) and the owner's last
// heartbeat is older than it. Only rows that change are written (a heartbeat lists every VM of
// its node every few seconds; most are as they were): RETURNING lists the rows written, and of
// the others those still owned by the node were unchanged, the rest refused.
//
// $3 is the message's state_seq (PROTOCOL.md §9): a row whose state was written by a later
// message of its node is not written again by an earlier one (replicas apply heartbeats and
// events concurrently: a heartbeat built before an agent's ready event must not undo it). A row a
// message leaves as it was keeps the seq of the one that last changed it (rows are written only
// on change). 0 (a daemon before 0.7.0) is not ordered.
const UPSERT_VMS = `
  INSERT INTO vms (id, node_id, name, agent_state, agent_version, capabilities, hostname, os,
                   interfaces, connected_since, last_seen_at, updated_at, agent_target,
                   agent_last_update, state_seq)
  SELECT x.id, x.node_id, x.name, x.agent_state, x.agent_version, x.capabilities, x.hostname,
         x.os, x.interfaces, x.connected_since, x.last_seen_at, now(),
         COALESCE(x.agent_target, ''), x.agent_last_update, $3::bigint
  FROM jsonb_to_recordset($1::jsonb) AS x(
    id text, node_id text, name text, agent_state text, agent_version text, capabilities jsonb,
    hostname text, os jsonb, interfaces jsonb, connected_since timestamptz,
    last_seen_at timestamptz, agent_target text, agent_last_update jsonb)
  ON CONFLICT (id) DO UPDATE SET
    node_id = EXCLUDED.node_id,
    name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE vms.name END,
    agent_state = EXCLUDED.agent_state,
    agent_version = CASE WHEN EXCLUDED.os IS NULL AND EXCLUDED.agent_version = ''
                         THEN vms.agent_version ELSE EXCLUDED.agent_version END,
    capabilities = CASE WHEN EXCLUDED.os IS NULL AND EXCLUDED.capabilities = '[]'::jsonb
                        THEN vms.capabilities ELSE EXCLUDED.capabilities END,
    hostname = CASE WHEN EXCLUDED.os IS NULL THEN vms.hostname ELSE EXCLUDED.hostname END,
    os = COALESCE(EXCLUDED.os, vms.os),
    agent_target = CASE WHEN EXCLUDED.os IS NULL THEN vms.agent_target
                        ELSE EXCLUDED.agent_target END,
    agent_last_update = COALESCE(EXCLUDED.agent_last_update, vms.agent_last_update),
    interfaces = CASE WHEN EXCLUDED.os IS NULL THEN vms.interfaces ELSE EXCLUDED.interfaces END,
    connected_since = EXCLUDED.connected_since,
    last_seen_at = COALESCE(EXCLUDED.last_seen_at, vms.last_seen_at),
    updated_at = now(),
    state_seq = EXCLUDED.state_seq
  WHERE (vms.node_id = EXCLUDED.node_id
     AND (EXCLUDED.state_seq = 0 OR EXCLUDED.state_seq >= vms.state_seq) AND (
          vms.agent_state IS DISTINCT FROM EXCLUDED.agent_state
       OR (EXCLUDED.name <> '' AND vms.name IS DISTINCT FROM EXCLUDED.name)
       OR vms.connected_since IS DISTINCT FROM EXCLUDED.connected_since
       OR (EXCLUDED.last_seen_at IS NOT NULL
           AND vms.last_seen_at IS DISTINCT FROM EXCLUDED.last_seen_at)
       OR (EXCLUDED.agent_last_update IS NOT NULL
           AND vms.agent_last_update IS DISTINCT FROM EXCLUDED.agent_last_update)
       OR (EXCLUDED.os IS NOT NULL AND (
             vms.os IS DISTINCT FROM EXCLUDED.os
          OR vms.agent_version IS DISTINCT FROM EXCLUDED.agent_version
          OR vms.capabilities IS DISTINCT FROM EXCLUDED.capabilities
          OR vms.hostname IS DISTINCT FROM EXCLUDED.hostname
          OR vms.agent_target IS DISTINCT FROM EXCLUDED.agent_target
          OR vms.interfaces IS DISTINCT FROM EXCLUDED.interfaces))
       OR (EXCLUDED.os IS NULL AND (
             (EXCLUDED.agent_version <> '' AND vms.agent_version IS DISTINCT FROM EXCLUDED.agent_version)
          OR (EXCLUDED.capabilities <> '[]'::jsonb
              AND vms.capabilities IS DISTINCT FROM EXCLUDED.capabilities)))))
     OR (vms.node_id <> EXCLUDED.node_id AND $2::timestamptz IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM nodes n WHERE n.id = vms.node_id AND n.last_heartbeat_at > $2))
  RETURNING id`;

// $3: the heartbeat's state_seq; a VM an event of the node named after it was built stays.
const MARK_GONE = `
  UPDATE vms SET agent_state = 'gone', updated_at = now(), state_seq = $3::bigint
  WHERE node_id = $1 AND agent_state <> 'gone' AND NOT (id = ANY($2::text[]))
    AND ($3::bigint = 0 OR state_seq <= $3::bigint)`;

// A daemon that restarted with its clock behind its last run would order its VMs' states below
// those already stored: its first heartbeat (a new started_at) resets their order.
const RESET_STATE_SEQ = `
  UPDATE vms SET state_seq = 0 WHERE node_id = $1 AND state_seq > $2::bigint`;

interface OwnerRecord {
  id: string;
  node_id: string;
  project_id: string;
}

interface LocationRecord {
  node_id: string;
  project_id: string;
  agent_state: string;
  agent_version: string;
  agent_target: string;
  file_chunk_max_bytes: number;
}

const VM_COLUMNS = `id, node_id, name, agent_state, agent_version, capabilities, hostname, os,
  interfaces, last_seen_at, telemetry, telemetry_at, project_id, labels, agent_target,
  agent_last_update`;

/** A node's claim on a VM another node owns, refused. */
export interface RefusedClaim {
  vmId: string;
  /** The node that owns the VM. */
  owner: string;
  projectId: string;
}

/** A VM taken over from a node silent for LQ_VM_ADOPT_AFTER_MS. */
export interface AdoptedVm {
  vmId: string;
  previousNode: string;
  projectId: string;
}

export interface ClaimResult {
  refused: RefusedClaim[];
  adopted: AdoptedVm[];
}

export interface HeartbeatResult extends ClaimResult {
  /** False when a newer heartbeat of the node was already applied (nothing else happened). */
  applied: boolean;
}

const NO_CLAIMS: ClaimResult = { refused: [], adopted: [] };

/** The inventory tables; the only place that speaks SQL for them. */
@Injectable()
export class InventoryRepository {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  /**
   * A node's heartbeat, in one transaction: the node row, every VM it lists that is new or its
   * own (a VM another node owns stays that node's: the claim is refused and returned, unless
   * that node has been silent for LQ_VM_ADOPT_AFTER_MS), and 'gone' for the VMs it no longer
   * lists that still belong to it. `applied` is false when a newer heartbeat was already applied.
   */
  async applyHeartbeat(hb: NodeHeartbeat, now = new Date()): Promise<HeartbeatResult> {
    const statuses = hb.vms.filter((s) => isSubjectToken(s.vmId));
    const rows = vmUpsertRows(hb.nodeId, statuses);
    const seq = String(hb.stateSeq);
    const startedAt = hb.startedAt ? timestampDate(hb.startedAt) : null;
    return this.inTransaction(async (qr) => {
      const node = await qr.query(
        UPSERT_NODE,
        [
          hb.nodeId,
          hb.hostname,
          hb.daemonVersion,
          startedAt,
          dateOr(hb.timestamp, now),
          int4(hb.fileChunkMaxBytes),
          rows.length,
        ],
        true,
      );
      if (node.records.length === 0) {
        return { applied: false, ...NO_CLAIMS };
      }
      if ((node.records[0] as { restarted: boolean }).restarted) {
        await qr.query(RESET_STATE_SEQ, [hb.nodeId, seq]);
      }
      const claims = await this.upsertVms(qr, hb.nodeId, rows, now, seq);
      await qr.query(MARK_GONE, [hb.nodeId, rows.map((r) => r.id), seq]);
      return { applied: true, ...claims };
    });
  }

  /**
   * An agent event: its status when it carries one, otherwise the state its kind implies. Like
   * a heartbeat, an event about a VM another node owns changes nothing (a refused claim).
   */
  async applyEvent(ev: AgentEvent, now = new Date()): Promise<ClaimResult> {
    const vmId = ev.vmId || ev.status?.vmId || '';
    if (!isSubjectToken(vmId) || !isSubjectToken(ev.nodeId)) {
      return NO_CLAIMS;
    }
    if (ev.status) {
      const rows = vmUpsertRows(ev.nodeId, [{ ...ev.status, vmId }]);
      return this.inTransaction((qr) =>
        this.upsertVms(qr, ev.nodeId, rows, now, String(ev.stateSeq)),
      );
    }
    const state = agentStateOfEventKind(ev.kind);
    if (state) {
      await this.ds.query(
        `UPDATE vms SET agent_state = $3, updated_at = now(), state_seq = $4::bigint
         WHERE id = $1 AND node_id = $2 AND ($4::bigint = 0 OR $4::bigint >= state_seq)`,
        [vmId, ev.nodeId, state, String(ev.stateSeq)],
      );
    }
    return NO_CLAIMS;
  }

  /**
   * The VM's latest telemetry (ignored for unknown VMs, from a node that does not own the VM,
   * and for reports older than the stored one); the report's addresses replace the stored
   * interfaces when it has any.
   */
  async applyTelemetry(t: VmTelemetry, now = new Date()): Promise<boolean> {
    const report = t.report;
    if (!report) {
      return false;
    }
    const result = await this.withRunner((qr) =>
      qr.query(
        `UPDATE vms SET
           telemetry = $2::jsonb,
           telemetry_at = $3,
           interfaces = CASE WHEN jsonb_array_length($4::jsonb) > 0 THEN $4::jsonb
                             ELSE interfaces END,
           updated_at = now()
         WHERE id = $1 AND node_id = $5 AND (telemetry_at IS NULL OR telemetry_at <= $3)`,
        [
          t.vmId,
          JSON.stringify(toJson(TelemetryReportSchema, report)),
          dateOr(t.timestamp, now),
          JSON.stringify(interfacesJson(report.interfaces)),
          t.nodeId,
        ],
        true,
      ),
    );
    return (result.affected ?? 0) > 0;
  }

  async locate(vmId: string): Promise<VmLocation | undefined> {
    const rows = await this.ds.query<LocationRecord[]>(
      `SELECT v.node_id, v.project_id, v.agent_state, v.agent_version, v.agent_target, COALESCE(n.file_chunk_max_bytes, 0) AS file_chunk_max_bytes
       FROM vms v LEFT JOIN nodes n ON n.id = v.node_id
       WHERE v.id = $1`,
      [vmId],
    );
    const r = rows[0];
    return r
      ? {
          nodeId: r.node_id,
          projectId: r.project_id,
          agentState: r.agent_state,
          agentVersion: r.agent_version,
          agentTarget: r.agent_target,
          fileChunkMaxBytes: r.file_chunk_max_bytes,
        }
      : undefined;
  }

  /** Every VM, or those of the given projects. */
  async listVms(projects: 'all' | string[] = 'all'): Promise<VM[]> {
    const rows =
      projects === 'all'
        ? await this.ds.query<VmRecord[]>(`SELECT ${VM_COLUMNS} FROM vms ORDER BY id`)
        : await this.ds.query<VmRecord[]>(
            `SELECT ${VM_COLUMNS} FROM vms WHERE project_id = ANY($1::text[]) ORDER BY id`,
            [projects],
          );
    return rows.map(vmFromRecord);
  }

  async getVm(id: string): Promise<VM | undefined> {
    const rows = await this.ds.query<VmRecord[]>(`SELECT ${VM_COLUMNS} FROM vms WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? vmFromRecord(rows[0]) : undefined;
  }

  async listNodes(now = Date.now()): Promise<NodeView[]> {
    const rows = await this.ds.query<NodeRecord[]>(
      `SELECT id, hostname, daemon_version, last_heartbeat_at, file_chunk_max_bytes, vm_count
       FROM nodes ORDER BY id`,
    );
    return rows.map((r) => nodeViewFromRecord(r, now, this.config.nodeStaleMs));
  }

  /** For the metrics scrape. */
  /** VMs (gone ones left out) per agent version and build target, for lq_agent_version_info. */
  countVmsByAgentVersion(): Promise<Array<{ version: string; target: string; n: number }>> {
    return this.ds.query(
      `SELECT agent_version AS version, agent_target AS target, count(*)::int AS n FROM vms
       WHERE agent_state <> 'gone' GROUP BY agent_version, agent_target`,
    );
  }

  async countVmsByAgentState(): Promise<Map<string, number>> {
    const rows = await this.ds.query<Array<{ agent_state: string; n: number }>>(
      'SELECT agent_state, count(*)::int AS n FROM vms GROUP BY agent_state',
    );
    return new Map(rows.map((r) => [r.agent_state, r.n]));
  }

  /** A cheap round trip, for /health. */
  async ping(): Promise<void> {
    await this.ds.query('SELECT 1');
  }

  /**
   * Moves a VM to another node (an admin's explicit step): from now on that node's claims are
   * accepted and the previous node's refused. Its agent state is 'gone' until the new node
   * lists it. Undefined when the VM is not in the inventory.
   */
  async moveVm(
    vmId: string,
    nodeId: string,
  ): Promise<{ previousNode: string; projectId: string } | undefined> {
    const result = await this.withRunner((qr) =>
      qr.query(
        `UPDATE vms v SET
         node_id = $2,
         agent_state = CASE WHEN old.node_id = $2 THEN v.agent_state ELSE 'gone' END,
         updated_at = now()
       FROM (SELECT id, node_id FROM vms WHERE id = $1 FOR UPDATE) old
       WHERE v.id = old.id
       RETURNING old.node_id AS previous_node, v.project_id`,
        [vmId, nodeId],
        true,
      ),
    );
    const r = (result.records as Array<{ previous_node: string; project_id: string }>)[0];
    return r ? { previousNode: r.previous_node, projectId: r.project_id } : undefined;
  }

  async nodeExists(nodeId: string): Promise<boolean> {
    const rows = await this.ds.query<unknown[]>('SELECT 1 FROM nodes WHERE id = $1', [nodeId]);
    return rows.length > 0;
  }

  /**
   * Writes the rows a node reported, except those naming a VM another node owns: those are
   * refused (or adopted, when the owner has been silent for LQ_VM_ADOPT_AFTER_MS).
   */
  private async upsertVms(
    qr: QueryRunner,
    nodeId: string,
    rows: VmUpsertRow[],
    now: Date,
    /** The message's state_seq (UPSERT_VMS). */
    seq: string,
  ): Promise<ClaimResult> {
    if (rows.length === 0) {
      return NO_CLAIMS;
    }
    const ids = rows.map((r) => r.id);
    const adoptAfter = this.config.vmAdoptAfterMs;
    // With adoption on, who owned them before the upsert (locked, so the answer holds).
    const others =
      adoptAfter > 0
        ? ((await qr.query(
            `SELECT id, node_id, project_id FROM vms
             WHERE id = ANY($1::text[]) AND node_id <> $2 ORDER BY id FOR UPDATE`,
            [ids, nodeId],
          )) as OwnerRecord[])
        : [];
    const written = (await qr.query(UPSERT_VMS, [
      JSON.stringify(rows),
      adoptAfter > 0 ? new Date(now.getTime() - adoptAfter) : null,
      seq,
    ])) as Array<{ id: string }>;
    const accepted = new Set(written.map((r) => r.id));
    const adopted = others
      .filter((o) => accepted.has(o.id))
      .map((o) => ({ vmId: o.id, previousNode: o.node_id, projectId: o.project_id }));
    const refusedIds = ids.filter((id) => !accepted.has(id));
    if (refusedIds.length === 0) {
      return { refused: [], adopted };
    }
    // Not written: unchanged (still this node's), or refused (another node's).
    const owners = (await qr.query(
      'SELECT id, node_id, project_id FROM vms WHERE id = ANY($1::text[]) AND node_id <> $2 ORDER BY id',
      [refusedIds, nodeId],
    )) as OwnerRecord[];
    return {
      refused: owners.map((o) => ({ vmId: o.id, owner: o.node_id, projectId: o.project_id })),
      adopted,
    };
  }

  private async withRunner<T>(work: (qr: QueryRunner) => Promise<T>): Promise<T> {
    const qr = this.ds.createQueryRunner();
    try {
      return await work(qr);
    } finally {
      await qr.release();
    }
  }

  private inTransaction<T>(work: (qr: QueryRunner) => Promise<T>): Promise<T> {
    return this.withRunner(async (qr) => {
      await qr.startTransaction();
      try {
        const result = await work(qr);
        await qr.commitTransaction();
        return result;
      } catch (err) {
        await qr.rollbackTransaction().catch(() => undefined);
        throw err;
      }
    });
  }

  /** Since when each agent has been connected (kept from the node daemons' heartbeats). */
  async connectedSince(ids: string[]): Promise<Map<string, string | null>> {
    if (ids.length === 0) {
      return new Map();
    }
    const rows = await this.ds.query<Array<{ id: string; connected_since: Date | null }>>(
      'SELECT id, connected_since FROM vms WHERE id = ANY($1::text[])',
      [ids],
    );
    return new Map(rows.map((r) => [r.id, r.connected_since?.toISOString() ?? null]));
  }

  /** Moves a VM to a project; its previous project, or undefined when the VM is unknown. */
  async setVmProject(vmId: string, projectId: string): Promise<string | undefined> {
    // UPDATE … RETURNING answers [rows, count].
    const [rows] = await this.ds.query<[Array<{ previous: string }>, number]>(
      `UPDATE vms v SET project_id = $2, updated_at = now()
       FROM (SELECT id, project_id FROM vms WHERE id = $1 FOR UPDATE) old
       WHERE v.id = old.id RETURNING old.project_id AS previous`,
      [vmId, projectId],
    );
    return rows[0]?.previous;
  }

  async projectExists(id: string): Promise<boolean> {
    const rows = await this.ds.query<unknown[]>('SELECT 1 FROM projects WHERE id = $1', [id]);
    return rows.length > 0;
  }

  /** Replaces a VM's labels; false when the VM is unknown. */
  async setLabels(vmId: string, labels: Record<string, string>): Promise<boolean> {
    const result = await this.ds.query<[unknown[], number]>(
      `UPDATE vms SET labels = $2::jsonb, updated_at = now() WHERE id = $1`,
      [vmId, JSON.stringify(labels)],
    );
    return (result[1] ?? 0) > 0;
  }
}
