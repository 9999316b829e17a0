import { Inject, Injectable, Logger } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { TelemetryRepository, type GaugeRecord } from './telemetry.repository.js';

/**
 * The history's own counters, and the guests' gauges per VM (lq_vm_guest_*) so Prometheus and
 * Grafana users see what the dashboard shows. Their cardinality is bounded: labels vm, node and
 * project only; only VMs that are not gone and reported lately (the gauges are rebuilt at each
 * scrape, so a VM that stops reporting or is removed leaves them); at most LQ_METRICS_VM_MAX
 * VMs, busiest first.
 */
@Injectable()
export class TelemetryMetrics {
  private readonly log = new Logger('metrics');
  private readonly reports: Counter<'outcome'>;
  private readonly written: Counter;
  private readonly pruned: Counter<'resolution'>;
  private readonly flushFailures: Counter;
  private readonly buffered: Gauge;

  constructor(
    @Inject(MetricsService) metrics: MetricsService,
    @Inject(TelemetryRepository) repo: TelemetryRepository,
    @Inject(CONTROL_PLANE_CONFIG) config: ControlPlaneConfig,
  ) {
    const registers = [metrics.registry];
    this.reports = new Counter({
      name: 'lq_telemetry_reports_total',
      help: 'Telemetry reports taken into the history (recorded), refused with the buffer full (dropped) or out of the retention (stale)',
      labelNames: ['outcome'],
      registers,
    });
    this.written = new Counter({
      name: 'lq_telemetry_points_written_total',
      help: 'Telemetry history points upserted',
      registers,
    });
    this.flushFailures = new Counter({
      name: 'lq_telemetry_flush_failures_total',
      help: 'Writes of buffered telemetry points that failed (the points wait for the next one)',
      registers,
    });
    this.pruned = new Counter({
      name: 'lq_telemetry_points_pruned_total',
      help: 'Telemetry history points deleted past their retention, by resolution',
      labelNames: ['resolution'],
      registers,
    });
    this.buffered = new Gauge({
      name: 'lq_telemetry_buffer_points',
      help: 'Telemetry points held in memory until the next write',
      registers,
    });
    const max = config.telemetry.metricsVmMax;
    // A VM is current while its reports keep coming: three fine steps (and at least a minute).
    const freshMs = Math.max(60_000, 3 * config.telemetry.fine.stepSeconds * 1000);
    const log = this.log;
    // One query per scrape: the registry collects every metric at once, so the six gauges
    // share the read under way.
    let inflight: Promise<GaugeRecord[]> | undefined;
    const rows = (): Promise<GaugeRecord[]> => {
      inflight ??= (
        max === 0 ? Promise.resolve([]) : repo.gauges(new Date(Date.now() - freshMs), max)
      )
        .catch((err: unknown) => {
          log.warn(`guest gauges not updated: ${(err as Error).message}`);
          return [];
        })
        .finally(() => {
          inflight = undefined;
        });
      return inflight;
    };
    const gauge = (name: string, help: string, value: (r: GaugeRecord) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['vm', 'node', 'project'],
        registers,
        async collect() {
          this.reset();
          for (const r of await rows()) {
            const v = value(r);
            if (v !== null && Number.isFinite(v)) {
              this.set({ vm: r.id, node: r.node_id, project: r.project_id }, v);
            }
          }
        },
      });
    gauge(
      'lq_vm_guest_cpu_percent',
      'Guest CPU busy share, 0–100 across its CPUs',
      (r) => r.cpu ?? 0,
    );
    gauge('lq_vm_guest_memory_used_bytes', 'Guest memory in use', (r) => r.mem_used ?? 0);
    gauge('lq_vm_guest_memory_total_bytes', 'Guest memory in all', (r) => r.mem_total);
    gauge(
      'lq_vm_guest_disk_used_bytes',
      'Guest filesystems’ used bytes, summed',
      (r) => r.disk_used,
    );
    gauge('lq_vm_guest_disk_total_bytes', 'Guest filesystems’ size, summed', (r) => r.disk_total);
    gauge(
      'lq_vm_guest_disk_max_used_percent',
      'Use of the guest’s fullest filesystem, 0–100',
      (r) => r.disk_max_percent,
    );
  }

  report(outcome: 'recorded' | 'dropped' | 'stale'): void {
    this.reports.inc({ outcome });
  }

  pointsWritten(n: number): void {
    this.written.inc(n);
  }

  flushFailed(): void {
    this.flushFailures.inc();
  }

  pointsPruned(resolution: string, n: number): void {
    this.pruned.inc({ resolution }, n);
  }

  bufferSize(n: number): void {
    this.buffered.set(n);
  }
}
