import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Resolution, type Point } from './telemetry-points.js';

// Points of VMs the inventory does not know, or reported by a node that does not own the VM,
// are left out (the join), like the latest report (InventoryRepository.applyTelemetry). Two
// partial points of one step merge: sums add, the latest sample's values win, the counters
// keep the earliest first and the latest last reading (telemetry-points.ts).
const UPSERT_POINTS = `
  INSERT INTO telemetry_points AS t (vm_id, resolution, bucket, step_seconds, samples, cpu_sum,
    cpu_max, load1_sum, mem_used_sum, mem_total, disk_used, disk_total, disk_max_percent,
    rx_first, tx_first, rx_last, tx_last, first_at, last_at)
  SELECT x.vm_id, x.resolution, to_timestamp(x.bucket_ms::float8 / 1000), x.step_seconds,
         x.samples, x.cpu_sum, x.cpu_max, x.load1_sum, x.mem_used_sum, x.mem_total, x.disk_used,
         x.disk_total, x.disk_max_percent, x.rx_first, x.tx_first, x.rx_last, x.tx_last,
         to_timestamp(x.first_ms::float8 / 1000), to_timestamp(x.last_ms::float8 / 1000)
  FROM jsonb_to_recordset($1::jsonb) AS x(
    vm_id text, node_id text, resolution smallint, bucket_ms bigint, step_seconds integer,
    samples integer, cpu_sum float8, cpu_max real, load1_sum float8, mem_used_sum float8,
    mem_total bigint, disk_used bigint, disk_total bigint, disk_max_percent real,
    rx_first bigint, tx_first bigint, rx_last bigint, tx_last bigint, first_ms bigint,
    last_ms bigint)
  JOIN vms v ON v.id = x.vm_id AND v.node_id = x.node_id
  -- One order of row locks for every writer: two replicas' flushes never deadlock.
  ORDER BY x.vm_id, x.resolution, x.bucket_ms
  ON CONFLICT (vm_id, resolution, bucket) DO UPDATE SET
    samples = t.samples + EXCLUDED.samples,
    cpu_sum = t.cpu_sum + EXCLUDED.cpu_sum,
    cpu_max = GREATEST(t.cpu_max, EXCLUDED.cpu_max),
    load1_sum = t.load1_sum + EXCLUDED.load1_sum,
    mem_used_sum = t.mem_used_sum + EXCLUDED.mem_used_sum,
    mem_total = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.mem_total ELSE t.mem_total END,
    disk_used = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.disk_used ELSE t.disk_used END,
    disk_total = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.disk_total ELSE t.disk_total END,
    disk_max_percent = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.disk_max_percent
                            ELSE t.disk_max_percent END,
    rx_last = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.rx_last ELSE t.rx_last END,
    tx_last = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.tx_last ELSE t.tx_last END,
    rx_first = CASE WHEN EXCLUDED.first_at < t.first_at THEN EXCLUDED.rx_first ELSE t.rx_first END,
    tx_first = CASE WHEN EXCLUDED.first_at < t.first_at THEN EXCLUDED.tx_first ELSE t.tx_first END,
    first_at = LEAST(t.first_at, EXCLUDED.first_at),
    last_at = GREATEST(t.last_at, EXCLUDED.last_at)`;

// A point's network rates over its span (none when it has no span or a counter went back).
const rateOf = (
  c: 'rx' | 'tx',
) => `(CASE WHEN p.last_at > p.first_at AND p.${c}_last >= p.${c}_first
  THEN (p.${c}_last - p.${c}_first) / extract(epoch FROM p.last_at - p.first_at) END)::float8`;
const RX_RATE = rateOf('rx');
const TX_RATE = rateOf('tx');

// The columns of a read: averages over the point's samples, network rates over its span.
const POINT_COLUMNS = `
  (extract(epoch FROM p.bucket) * 1000)::float8 AS t, p.step_seconds, p.samples,
  p.cpu_sum / p.samples AS cpu, p.cpu_max, p.load1_sum / p.samples AS load1,
  p.mem_used_sum / p.samples AS mem_used, p.mem_total::float8 AS mem_total,
  p.disk_used::float8 AS disk_used, p.disk_total::float8 AS disk_total, p.disk_max_percent,
  ${RX_RATE} AS rx_rate, ${TX_RATE} AS tx_rate`;

/** A stored point as read back: averages and rates, not sums and counters. */
export interface PointRecord {
  t: number;
  step_seconds: number;
  samples: number;
  cpu: number;
  cpu_max: number;
  load1: number;
  mem_used: number;
  mem_total: number;
  disk_used: number;
  disk_total: number;
  disk_max_percent: number;
  rx_rate: number | null;
  tx_rate: number | null;
}

/** A VM in a summary's scope with its newest point's figures (see `topLatest`). */
export interface LatestRecord {
  id: string;
  name: string;
  node_id: string;
  project_id: string;
  t: number;
  cpu: number;
  mem_used: number;
  mem_total: number;
  disk_max_percent: number;
  /** Received + sent bytes/s of the newest of its two newest points that has a span. */
  net: number | null;
}

export interface FullDiskRecord {
  id: string;
  name: string;
  node_id: string;
  project_id: string;
  mount_point: string;
  used: number;
  total: number;
}

/** Guest gauges of a VM for /metrics: its latest report. */
export interface GaugeRecord {
  id: string;
  node_id: string;
  project_id: string;
  cpu: number | null;
  mem_used: number | null;
  mem_total: number | null;
  disk_used: number | null;
  disk_total: number | null;
  disk_max_percent: number | null;
}

export type ProjectScope = 'all' | string[];

function scopeOf(projects: ProjectScope, param: number, alias = 'v'): string {
  return projects === 'all' ? 'true' : `${alias}.project_id = ANY($${param}::text[])`;
}

function scopeParams(projects: ProjectScope): unknown[] {
  return projects === 'all' ? [] : [projects];
}

/** The telemetry history; the only place that speaks SQL for it. */
@Injectable()
export class TelemetryRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  /** One upsert of points (a flush); answers how many rows were written. */
  async upsert(points: Point[]): Promise<number> {
    if (points.length === 0) {
      return 0;
    }
    const rows = points.map((p) => ({
      vm_id: p.vmId,
      node_id: p.nodeId,
      resolution: p.resolution,
      bucket_ms: p.bucketMs,
      step_seconds: p.stepSeconds,
      samples: p.samples,
      cpu_sum: p.cpuSum,
      cpu_max: p.cpuMax,
      load1_sum: p.load1Sum,
      mem_used_sum: p.memUsedSum,
      mem_total: Math.round(p.memTotal),
      disk_used: Math.round(p.diskUsed),
      disk_total: Math.round(p.diskTotal),
      disk_max_percent: p.diskMaxPercent,
      rx_first: Math.round(p.rxFirst),
      tx_first: Math.round(p.txFirst),
      rx_last: Math.round(p.rxLast),
      tx_last: Math.round(p.txLast),
      first_ms: Math.round(p.firstAt),
      last_ms: Math.round(p.lastAt),
    }));
    return this.affected(UPSERT_POINTS, [JSON.stringify(rows)]);
  }

  /** The points of one VM and resolution whose step starts in [from, to), oldest first. */
  series(vmId: string, resolution: Resolution, from: Date, to: Date): Promise<PointRecord[]> {
    return this.ds.query<PointRecord[]>(
      `SELECT ${POINT_COLUMNS} FROM telemetry_points p
       WHERE p.vm_id = $1 AND p.resolution = $2 AND p.bucket >= $3 AND p.bucket < $4
       ORDER BY p.bucket`,
      [vmId, resolution, from, to],
    );
  }

  /**
   * The VMs in scope that are not gone and have a point of the resolution since `since`: how
   * many, and those among the first `top` by each of cpu, memory, disk and network use. Each
   * list is ordered as the summary orders it (the value rounded to 0.01 as shown, descending;
   * then the id), so the summary's top lists taken over these rows are those of the whole
   * fleet; only these rows leave the database. One range scan of the points' expiry index
   * finds the recent points of every VM (one index probe per VM was the slow part at 1,000).
   */
  async topLatest(
    projects: ProjectScope,
    resolution: Resolution,
    since: Date,
    top: number,
  ): Promise<{ reporting: number; rows: LatestRecord[] }> {
    // Rounded as the view rounds (Math.round(x * 100) / 100 is floor(x * 100 + 0.5) / 100);
    // real columns go through their text form, as the driver hands them to JavaScript.
    const shown = (x: string) => `floor(${x} * 100 + 0.5) DESC, id COLLATE "C"`;
    const rows = await this.ds.query<Array<Partial<LatestRecord> & { reporting: number }>>(
      `WITH r AS (
         SELECT p.vm_id, (extract(epoch FROM p.bucket) * 1000)::float8 AS t,
                p.cpu_sum / p.samples AS cpu, p.mem_used_sum / p.samples AS mem_used,
                p.mem_total::float8 AS mem_total, p.disk_max_percent::text::float8 AS disk_max_percent,
                ${RX_RATE} + ${TX_RATE} AS net,
                row_number() OVER (PARTITION BY p.vm_id ORDER BY p.bucket DESC) AS k
         FROM telemetry_points p WHERE p.resolution = $1 AND p.bucket >= $2)
       , f AS MATERIALIZED (
         SELECT v.id, v.name, v.node_id, v.project_id, a.t, a.cpu, a.mem_used, a.mem_total,
                a.disk_max_percent, COALESCE(a.net, a.older_net) AS net
         FROM (SELECT r.*, lead(r.net) OVER (PARTITION BY r.vm_id ORDER BY r.k) AS older_net
               FROM r WHERE r.k <= 2) a
         JOIN vms v ON v.id = a.vm_id
         WHERE a.k = 1 AND v.agent_state <> 'gone' AND ${scopeOf(projects, 4)})
       SELECT (SELECT count(*) FROM f)::int AS reporting, c.*
       FROM (SELECT 1) one LEFT JOIN (SELECT f.* FROM f WHERE f.id IN (
         (SELECT id FROM f ORDER BY ${shown('cpu')} LIMIT $3)
         UNION (SELECT id FROM f WHERE mem_total > 0
                ORDER BY ${shown('(mem_used / mem_total * 100)')} LIMIT $3)
         UNION (SELECT id FROM f ORDER BY ${shown('disk_max_percent')} LIMIT $3)
         UNION (SELECT id FROM f WHERE net IS NOT NULL ORDER BY ${shown('net')} LIMIT $3))) c
       ON true`,
      [resolution, since, top, ...scopeParams(projects)],
    );
    return {
      reporting: rows[0]?.reporting ?? 0,
      rows: rows.filter((r): r is LatestRecord & { reporting: number } => typeof r.id === 'string'),
    };
  }

  /** VMs in scope by agent state (gone ones included). */
  countByState(projects: ProjectScope): Promise<Array<{ key: string; n: number }>> {
    return this.ds.query(
      `SELECT v.agent_state AS key, count(*)::int AS n FROM vms v WHERE ${scopeOf(projects, 1)}
       GROUP BY 1 ORDER BY 2 DESC, 1`,
      scopeParams(projects),
    );
  }

  /** VMs in scope that are not gone, by agent version ('' when never reported). */
  countByVersion(projects: ProjectScope): Promise<Array<{ key: string; n: number }>> {
    return this.ds.query(
      `SELECT v.agent_version AS key, count(*)::int AS n FROM vms v
       WHERE v.agent_state <> 'gone' AND ${scopeOf(projects, 1)}
       GROUP BY 1 ORDER BY 2 DESC, 1`,
      scopeParams(projects),
    );
  }

  /**
   * Filesystems at or above `percent` use, per the latest report of VMs in scope that are not
   * gone, fullest first: at most `limit` of them, and how many there are in all.
   */
  async fullDisks(
    projects: ProjectScope,
    percent: number,
    limit: number,
  ): Promise<{ rows: FullDiskRecord[]; vms: number }> {
    const rows = await this.ds.query<Array<FullDiskRecord & { vms: number }>>(
      `WITH d AS (
         SELECT v.id, v.name, v.node_id, v.project_id, x->>'mountPoint' AS mount_point,
                COALESCE((x->>'usedBytes')::float8, 0) AS used,
                COALESCE((x->>'totalBytes')::float8, 0) AS total
         FROM vms v CROSS JOIN LATERAL jsonb_array_elements(
           CASE WHEN jsonb_typeof(v.telemetry->'disks') = 'array' THEN v.telemetry->'disks'
                ELSE '[]'::jsonb END) x
         WHERE v.agent_state <> 'gone' AND ${scopeOf(projects, 3)})
       , f AS (SELECT * FROM d WHERE d.total > 0 AND d.used * 100 >= $1 * d.total)
       SELECT f.*, (SELECT count(DISTINCT id) FROM f)::int AS vms FROM f
       ORDER BY f.used / f.total DESC, f.id, f.mount_point LIMIT $2`,
      [percent, limit, ...scopeParams(projects)],
    );
    return { rows, vms: rows[0]?.vms ?? 0 };
  }

  /**
   * The guest gauges of VMs that are not gone and reported within `since`, busiest first, at
   * most `limit` (the bound on /metrics' series).
   */
  gauges(since: Date, limit: number): Promise<GaugeRecord[]> {
    return this.ds.query<GaugeRecord[]>(
      `SELECT v.id, v.node_id, v.project_id,
              (v.telemetry->>'cpuPercent')::float8 AS cpu,
              (v.telemetry->'memory'->>'usedBytes')::float8 AS mem_used,
              (v.telemetry->'memory'->>'totalBytes')::float8 AS mem_total,
              d.used AS disk_used, d.total AS disk_total, d.max_percent AS disk_max_percent
       FROM vms v
       LEFT JOIN LATERAL (
         SELECT sum(COALESCE((x->>'usedBytes')::float8, 0)) AS used,
                sum(COALESCE((x->>'totalBytes')::float8, 0)) AS total,
                max(CASE WHEN COALESCE((x->>'totalBytes')::float8, 0) > 0
                         THEN 100 * COALESCE((x->>'usedBytes')::float8, 0) / (x->>'totalBytes')::float8
                    END) AS max_percent
         FROM jsonb_array_elements(
           CASE WHEN jsonb_typeof(v.telemetry->'disks') = 'array' THEN v.telemetry->'disks'
                ELSE '[]'::jsonb END) x) d ON true
       WHERE v.agent_state <> 'gone' AND v.telemetry IS NOT NULL AND v.telemetry_at >= $1
       ORDER BY cpu DESC NULLS LAST, v.id LIMIT $2`,
      [since, limit],
    );
  }

  /**
   * Deletes at most `batch` points of a resolution whose step started before `before`;
   * answers how many.
   */
  async prune(resolution: Resolution, before: Date, batch: number): Promise<number> {
    return this.affected(
      `DELETE FROM telemetry_points WHERE ctid = ANY(ARRAY(
         SELECT ctid FROM telemetry_points
         WHERE resolution = $1 AND bucket < $2 LIMIT $3))`,
      [resolution, before, batch],
    );
  }

  private async affected(sql: string, params: unknown[]): Promise<number> {
    const qr = this.ds.createQueryRunner();
    try {
      const result = await qr.query(sql, params, true);
      return result.affected ?? 0;
    } finally {
      await qr.release();
    }
  }
}
