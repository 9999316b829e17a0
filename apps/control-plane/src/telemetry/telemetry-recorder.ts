import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import type { VmTelemetry } from '@lq/proto';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { TelemetryBuffer } from './telemetry-buffer.js';
import { sampleOf } from './telemetry-points.js';
import { TelemetryMetrics } from './telemetry.metrics.js';
import { TelemetryRepository } from './telemetry.repository.js';

// Reports stamped further ahead than this are refused: a node's clock gone wrong must not
// write points the dashboard would show as the future.
const FUTURE_SLACK_MS = 5 * 60_000;
const SHUTDOWN_GRACE_MS = 5000;
const ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * Records every telemetry report into the history: reports are folded into their points in
 * memory (TelemetryBuffer, bounded by LQ_TELEMETRY_BUFFER_MAX), and every LQ_TELEMETRY_FLUSH_MS
 * the points go to PostgreSQL in batched upserts of LQ_TELEMETRY_BATCH_ROWS rows, one flush at a
 * time. A failed write puts its points back (as far as the bound allows) for the next one: the
 * history loses at most what the bound cannot hold, and never holds the pool with single rows.
 * At most twice the bound is in memory: the points being written and those arriving meanwhile.
 */
@Injectable()
export class TelemetryRecorder implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('telemetry');
  private readonly buffer: TelemetryBuffer;
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private lastErrorLog = 0;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(TelemetryRepository) private readonly repo: TelemetryRepository,
    @Inject(TelemetryMetrics) private readonly metrics: TelemetryMetrics,
  ) {
    const t = config.telemetry;
    this.buffer = new TelemetryBuffer({ fine: t.fine, coarse: t.coarse }, t.bufferMax);
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.flush(), this.config.telemetry.flushMs);
    this.timer.unref();
  }

  /** Points waiting for the next flush. */
  get buffered(): number {
    return this.buffer.size;
  }

  /**
   * Takes one report (the node and VM already checked against the subject); false when it was
   * not kept: no report, outside the retention, or the buffer full.
   */
  record(t: VmTelemetry, now = Date.now()): boolean {
    if (!t.report) {
      return false;
    }
    const at = t.timestamp ? timestampMs(t.timestamp) : now;
    if (
      at > now + FUTURE_SLACK_MS ||
      at < now - this.config.telemetry.coarse.retentionSeconds * 1000
    ) {
      this.metrics.report('stale');
      return false;
    }
    if (!this.buffer.add(t.vmId, t.nodeId, sampleOf(t.report, at))) {
      this.metrics.report('dropped');
      void this.flush();
      return false;
    }
    this.metrics.report('recorded');
    this.metrics.bufferSize(this.buffer.size);
    return true;
  }

  /** Writes what is buffered; resolves once written (or put back after a failure). */
  async flush(): Promise<void> {
    while (this.flushing) {
      await this.flushing;
    }
    if (this.buffer.size === 0) {
      return;
    }
    this.flushing = this.write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    const points = this.buffer.take();
    const batch = this.config.telemetry.batchRows;
    for (let i = 0; i < points.length; i += batch) {
      try {
        this.metrics.pointsWritten(await this.repo.upsert(points.slice(i, i + batch)));
      } catch (err) {
        this.metrics.flushFailed();
        const dropped = this.buffer.restore(points.slice(i));
        if (Date.now() - this.lastErrorLog >= ERROR_LOG_INTERVAL_MS) {
          this.lastErrorLog = Date.now();
          this.log.error(
            `telemetry history not written (${points.length - i} points${dropped ? `, ${dropped} dropped` : ''}): ${(err as Error).message}`,
          );
        }
        break;
      }
    }
    this.metrics.bufferSize(this.buffer.size);
  }

  /** A last flush, bounded, before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
  }
}
