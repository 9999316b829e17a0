import { Module } from '@nestjs/common';
import { MetricsModule } from '../metrics/metrics.module.js';
import { TelemetryHistoryService } from './telemetry-history.service.js';
import { TelemetryPruner } from './telemetry-pruner.js';
import { TelemetryRecorder } from './telemetry-recorder.js';
import { TelemetryMetrics } from './telemetry.metrics.js';
import { TelemetryRepository } from './telemetry.repository.js';

/**
 * The telemetry history (issue 20 item 2): reports recorded as downsampled points (the
 * inventory's subscriber hands each one to the recorder), pruned in the background, read by the
 * dashboard's routes (inventory/fleet.controller.ts) and exported as per-VM gauges on /metrics.
 */
@Module({
  imports: [MetricsModule],
  providers: [
    TelemetryRepository,
    TelemetryMetrics,
    TelemetryRecorder,
    TelemetryPruner,
    TelemetryHistoryService,
  ],
  exports: [TelemetryRecorder, TelemetryHistoryService, TelemetryPruner],
})
export class TelemetryModule {}
