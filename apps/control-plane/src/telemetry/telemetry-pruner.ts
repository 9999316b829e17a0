import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { Resolution } from './telemetry-points.js';
import { TelemetryMetrics } from './telemetry.metrics.js';
import { TelemetryRepository } from './telemetry.repository.js';

/** DELETEs per run: a backlog (retention shortened, a replica down for days) is spread out. */
const BATCHES_PER_RUN = 100;

/**
 * Deletes points past their resolution's retention every LQ_TELEMETRY_PRUNE_INTERVAL_MS, in
 * DELETEs of at most LQ_TELEMETRY_PRUNE_BATCH rows (short transactions, no long lock), one run
 * at a time. Every replica prunes; they delete disjoint or already-deleted rows, which is harmless.
 */
@Injectable()
export class TelemetryPruner implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('telemetry');
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;
  private stopped = false;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(TelemetryRepository) private readonly repo: TelemetryRepository,
    @Inject(TelemetryMetrics) private readonly metrics: TelemetryMetrics,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.prune().catch((err: unknown) =>
        this.log.warn(`telemetry history not pruned: ${(err as Error).message}`),
      );
    }, this.config.telemetry.pruneIntervalMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** One run (or the one under way); answers how many points it deleted. */
  prune(now = Date.now()): Promise<number> {
    this.running ??= this.run(now).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(now: number): Promise<number> {
    const { fine, coarse, pruneBatch } = this.config.telemetry;
    let total = 0;
    for (const [resolution, tier, name] of [
      [Resolution.FINE, fine, 'fine'],
      [Resolution.COARSE, coarse, 'coarse'],
    ] as const) {
      const before = new Date(now - tier.retentionSeconds * 1000);
      for (let i = 0; i < BATCHES_PER_RUN && !this.stopped; i += 1) {
        const n = await this.repo.prune(resolution, before, pruneBatch);
        total += n;
        this.metrics.pointsPruned(name, n);
        if (n < pruneBatch) {
          break;
        }
      }
    }
    return total;
  }
}
