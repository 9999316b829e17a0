import { Injectable } from '@nestjs/common';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { reportError } from '../common/errors/error-kind.js';

/**
 * The control plane's Prometheus registry and the guest-operation metrics every transport
 * records. Other modules register their own metrics into `registry` (inventory.metrics.ts), so
 * this module imports none of them.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  private readonly operations = new Counter({
    name: 'lq_guest_operations_total',
    help: 'Guest operations by operation and outcome (ok or an error code)',
    labelNames: ['operation', 'outcome'],
    registers: [this.registry],
  });

  private readonly durations = new Histogram({
    name: 'lq_guest_operation_duration_seconds',
    help: 'Guest operation duration as the control plane measured it',
    labelNames: ['operation', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** One finished guest operation; outcome is 'ok' or the error code. */
  observe(operation: string, outcome: string, seconds: number): void {
    this.operations.inc({ operation, outcome });
    this.durations.observe({ operation, outcome }, seconds);
  }

  /**
   * Runs one guest operation for a transport and records it: 'ok', or the error code it
   * failed with ('INTERNAL' for anything unexpected). Errors pass through unchanged.
   */
  async measure<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await work();
      this.observe(operation, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      const outcome = reportError(err).code;
      this.observe(operation, outcome, (performance.now() - started) / 1000);
      throw err;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
