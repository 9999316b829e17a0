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
import type { NodeView, VmLocation } from './inventory.service.js';

// A heartbeat older than the stored one is ignored (replicas share the queue group, so two
// heartbeats of one node may be applied out of order), unless the daemon restarted: its clock
// may have gone back, and the next heartbeat heals a late one anyway.
const UPSERT_NODE = `
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
  RETURNING id`;

// One statement for all the VMs of a heartbeat: the rows travel as one jsonb parameter. A row
// without `os` carries no agent facts, so the facts already stored are kept.
const UPSERT_VMS = `
  INSERT INTO vms (id, node_id, agent_state, agent_version, capabilities, hostname, os,
                   interfaces, connected_since, last_seen_at, updated_at)
  SELECT x.id, x.node_id, x.agent_state, x.agent_version, x.capabilities, x.hostname, x.os,
         x.interfaces, x.connected_since, x.last_seen_at, now()
  FROM jsonb_to_recordset($1::jsonb) AS x(
    id text, node_id text, agent_state text, agent_version text, capabilities jsonb,
    hostname text, os jsonb, interfaces jsonb, connected_since timestamptz,
    last_seen_at timestamptz)
  ON CONFLICT (id) DO UPDATE SET
    node_id = EXCLUDED.node_id,
    agent_state = EXCLUDED.agent_state,
    agent_version = CASE WHEN EXCLUDED.os IS NULL AND EXCLUDED.agent_version = ''
                         THEN vms.agent_version ELSE EXCLUDED.agent_version END,
    capabilities = CASE WHEN EXCLUDED.os IS NULL AND EXCLUDED.capabilities = '[]'::jsonb
                        THEN vms.capabilities ELSE EXCLUDED.capabilities END,
    hostname = CASE WHEN EXCLUDED.os IS NULL THEN vms.hostname ELSE EXCLUDED.hostname END,
    os = COALESCE(EXCLUDED.os, vms.os),
    interfaces = CASE WHEN EXCLUDED.os IS NULL THEN vms.interfaces ELSE EXCLUDED.interfaces END,
    connected_since = EXCLUDED.connected_since,
    last_seen_at = COALESCE(EXCLUDED.last_seen_at, vms.last_seen_at),
    updated_at = now()`;

const MARK_GONE = `
  UPDATE vms SET agent_state = 'gone', updated_at = now()
  WHERE node_id = $1 AND agent_state <> 'gone' AND NOT (id = ANY($2::text[]))`;

interface LocationRecord {
  node_id: string;
  project_id: string;
  agent_state: string;
  file_chunk_max_bytes: number;
}

const VM_COLUMNS = `id, node_id, agent_state, agent_version, capabilities, hostname, os,
  interfaces, last_seen_at, telemetry, telemetry_at, project_id, labels`;

/** The inventory tables; the only place that speaks SQL for them. */
@Injectable()
export class InventoryRepository {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  /**
   * A node's heartbeat, in one transaction: the node row, every VM it lists (a VM listed by
   * another node than before now belongs to this one), and 'gone' for the VMs it no longer
   * lists that still belong to it. Returns false when a newer heartbeat was already applied.
   */
  async applyHeartbeat(hb: NodeHeartbeat, now = new Date()): Promise<boolean> {
    const statuses = hb.vms.filter((s) => isSubjectToken(s.vmId));
    const rows = vmUpsertRows(hb.nodeId, statuses);
    return this.inTransaction(async (qr) => {
      const node = await qr.query(
        UPSERT_NODE,
        [
          hb.nodeId,
          hb.hostname,
          hb.daemonVersion,
          hb.startedAt ? timestampDate(hb.startedAt) : null,
          dateOr(hb.timestamp, now),
          int4(hb.fileChunkMaxBytes),
          rows.length,
        ],
        true,
      );
      if (node.records.length === 0) {
        return false;
      }
      await this.upsertVms(qr, rows);
      await qr.query(MARK_GONE, [hb.nodeId, rows.map((r) => r.id)]);
      return true;
    });
  }

  /** An agent event: its status when it carries one, otherwise the state its kind implies. */
  async applyEvent(ev: AgentEvent): Promise<void> {
    const vmId = ev.vmId || ev.status?.vmId || '';
    if (!isSubjectToken(vmId) || !isSubjectToken(ev.nodeId)) {
      return;
    }
    if (ev.status) {
      const rows = vmUpsertRows(ev.nodeId, [{ ...ev.status, vmId }]);
      await this.withRunner((qr) => this.upsertVms(qr, rows));
      return;
    }
    const state = agentStateOfEventKind(ev.kind);
    if (state) {
      await this.ds.query(
        `UPDATE vms SET agent_state = $3, updated_at = now() WHERE id = $1 AND node_id = $2`,
        [vmId, ev.nodeId, state],
      );
    }
  }

  /**
   * The VM's latest telemetry (ignored for unknown VMs and for reports older than the stored
   * one); the report's addresses replace the stored interfaces when it has any.
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
         WHERE id = $1 AND (telemetry_at IS NULL OR telemetry_at <= $3)`,
        [
          t.vmId,
          JSON.stringify(toJson(TelemetryReportSchema, report)),
          dateOr(t.timestamp, now),
          JSON.stringify(interfacesJson(report.interfaces)),
        ],
        true,
      ),
    );
    return (result.affected ?? 0) > 0;
  }

  async locate(vmId: string): Promise<VmLocation | undefined> {
    const rows = await this.ds.query<LocationRecord[]>(
      `SELECT v.node_id, v.project_id, v.agent_state, COALESCE(n.file_chunk_max_bytes, 0) AS file_chunk_max_bytes
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

  private async upsertVms(qr: QueryRunner, rows: VmUpsertRow[]): Promise<void> {
    if (rows.length > 0) {
      await qr.query(UPSERT_VMS, [JSON.stringify(rows)]);
    }
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
}
