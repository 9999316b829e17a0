import { Inject, Injectable } from '@nestjs/common';
import type {
  CountView,
  FleetSummaryView,
  FleetVmView,
  TelemetryPointView,
  TelemetrySeriesView,
} from '@lq/api';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { Resolution, bucketOf } from './telemetry-points.js';
import { TelemetryException } from './telemetry.exception.js';
import {
  TelemetryRepository,
  type LatestRecord,
  type PointRecord,
  type ProjectScope,
} from './telemetry.repository.js';

/** The window of GET /api/vms/:id/telemetry without `from`. */
export const DEFAULT_WINDOW_MS = 3600_000;
export const DEFAULT_TOP = 10;
export const DEFAULT_DISK_PERCENT = 90;

export interface SeriesQuery {
  /** ISO 8601; default `to` − 1 h. */
  from?: string;
  /** ISO 8601; default now. */
  to?: string;
}

export interface SummaryQuery {
  top?: number;
  diskPercent?: number;
}

/**
 * Reads of the history for the dashboard: one VM's series (the caller already allowed to read
 * the VM) and the fleet's aggregates over a project scope.
 */
@Injectable()
export class TelemetryHistoryService {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(TelemetryRepository) private readonly repo: TelemetryRepository,
  ) {}

  /**
   * The points of [from, to): the fine resolution when the window lies within its retention,
   * else the coarse one. The window is at most LQ_TELEMETRY_QUERY_MAX_DAYS, so an answer holds
   * at most retention / step points of either resolution.
   */
  async series(vmId: string, q: SeriesQuery, now = Date.now()): Promise<TelemetrySeriesView> {
    const to = q.to === undefined ? now : timeOf('to', q.to);
    const from = q.from === undefined ? to - DEFAULT_WINDOW_MS : timeOf('from', q.from);
    if (from >= to) {
      throw TelemetryException.invalid(
        `from (${new Date(from).toISOString()}) must be before to (${new Date(to).toISOString()})`,
      );
    }
    const { fine, coarse, queryMaxWindowSeconds } = this.config.telemetry;
    if (to - from > queryMaxWindowSeconds * 1000) {
      throw TelemetryException.invalid(
        `the window from ${new Date(from).toISOString()} to ${new Date(to).toISOString()} is longer than ${describeSeconds(queryMaxWindowSeconds)} (LQ_TELEMETRY_QUERY_MAX_DAYS)`,
      );
    }
    const useFine =
      to - from <= fine.retentionSeconds * 1000 &&
      from >= now - fine.retentionSeconds * 1000 - fine.stepSeconds * 1000;
    const tier = useFine ? fine : coarse;
    const rows = await this.repo.series(
      vmId,
      useFine ? Resolution.FINE : Resolution.COARSE,
      new Date(bucketOf(from, tier.stepSeconds)),
      new Date(to),
    );
    return {
      vm_id: vmId,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      resolution: useFine ? 'fine' : 'coarse',
      step_seconds: tier.stepSeconds,
      points: rows.map(pointView),
    };
  }

  /** The dashboard's aggregates over the VMs of `projects`. */
  async summary(
    projects: ProjectScope,
    q: SummaryQuery,
    now = Date.now(),
  ): Promise<FleetSummaryView> {
    const max = this.config.telemetry.summaryTopMax;
    const top = q.top ?? Math.min(DEFAULT_TOP, max);
    if (!Number.isInteger(top) || top < 1 || top > max) {
      throw TelemetryException.invalid(
        `top must be an integer from 1 to ${max} (LQ_FLEET_SUMMARY_TOP_MAX)`,
      );
    }
    const diskPercent = q.diskPercent ?? DEFAULT_DISK_PERCENT;
    if (!Number.isFinite(diskPercent) || diskPercent < 0 || diskPercent > 100) {
      throw TelemetryException.invalid('disk_percent must be a number from 0 to 100');
    }
    const fine = this.config.telemetry.fine;
    // A VM counts as reporting while its points are at most three steps old.
    const since = new Date(bucketOf(now, fine.stepSeconds) - 3 * fine.stepSeconds * 1000);
    const [states, versions, latest, disks] = await Promise.all([
      this.repo.countByState(projects),
      this.repo.countByVersion(projects),
      this.repo.topLatest(projects, Resolution.FINE, since, top),
      this.repo.fullDisks(projects, diskPercent, top),
    ]);
    // The candidates hold each list's first `top` in this order: taken over them, the lists
    // are those of the whole fleet.
    const vms = latest.rows.map(fleetVm);
    const topBy = (value: (v: FleetVmView) => number | null) =>
      vms
        .filter((v) => value(v) !== null)
        .sort((a, b) => value(b)! - value(a)! || (a.id < b.id ? -1 : 1))
        .slice(0, top);
    return {
      generated_at: new Date(now).toISOString(),
      vms: states.reduce((n, s) => n + s.n, 0),
      reporting: latest.reporting,
      by_agent_state: states.map(countView),
      by_agent_version: versions.map(countView),
      top: {
        cpu: topBy((v) => v.cpu_percent),
        memory: topBy((v) => v.memory_percent),
        disk: topBy((v) => v.disk_max_percent),
        network: topBy((v) => v.net_bytes_per_second),
      },
      disk_threshold_percent: diskPercent,
      full_disk_vms: disks.vms,
      full_disks: disks.rows.map((d) => ({
        vm_id: d.id,
        vm_name: d.name,
        node_id: d.node_id,
        project_id: d.project_id,
        mount_point: d.mount_point,
        used_bytes: d.used,
        total_bytes: d.total,
        used_percent: round((d.used / d.total) * 100),
      })),
    };
  }
}

function timeOf(name: string, value: string): number {
  const t = ISO_8601.test(value) ? Date.parse(value) : NaN;
  if (!Number.isFinite(t)) {
    throw TelemetryException.invalid(
      `${name} must be an ISO 8601 time such as 2026-12-05T10:00:00Z (got ${JSON.stringify(value.slice(0, 64))})`,
    );
  }
  return t;
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function describeSeconds(s: number): string {
  return s % 86_400 === 0 ? `${s / 86_400} days` : `${s} s`;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function percent(used: number, total: number): number | null {
  return total > 0 ? round((used / total) * 100) : null;
}

function pointView(r: PointRecord): TelemetryPointView {
  return {
    t: new Date(r.t).toISOString(),
    samples: r.samples,
    cpu_percent: round(r.cpu),
    cpu_max_percent: round(r.cpu_max),
    load1: round(r.load1),
    memory_used_bytes: Math.round(r.mem_used),
    memory_total_bytes: r.mem_total,
    memory_percent: percent(r.mem_used, r.mem_total),
    disk_used_bytes: r.disk_used,
    disk_total_bytes: r.disk_total,
    disk_max_percent: round(r.disk_max_percent),
    net_rx_bytes_per_second: r.rx_rate === null ? null : round(r.rx_rate),
    net_tx_bytes_per_second: r.tx_rate === null ? null : round(r.tx_rate),
  };
}

/** A VM's view: gauges from its newest point, the rate from the newest with a span. */
function fleetVm(r: LatestRecord): FleetVmView {
  return {
    id: r.id,
    name: r.name,
    node_id: r.node_id,
    project_id: r.project_id,
    at: new Date(r.t).toISOString(),
    cpu_percent: round(r.cpu),
    memory_percent: percent(r.mem_used, r.mem_total),
    memory_used_bytes: Math.round(r.mem_used),
    disk_max_percent: round(r.disk_max_percent),
    net_bytes_per_second: r.net === null ? null : round(r.net),
  };
}

function countView(r: { key: string; n: number }): CountView {
  return { key: r.key, count: r.n };
}
