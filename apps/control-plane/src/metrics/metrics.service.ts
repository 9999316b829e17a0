import { Inject, Injectable, Logger } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { InventoryRepository } from '../inventory/inventory.repository.js';
import { VmGuestException } from '../guest-ops/vm-guest.exception.js';

const AGENT_STATES = ['ready', 'connecting', 'disconnected', 'gone'];

/** The control plane's Prometheus metrics, in a registry of its own. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private readonly log = new Logger('metrics');

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

  private readonly inventoryMessages = new Counter({
    name: 'lq_inventory_messages_total',
    help: 'Node daemon messages by kind (heartbeat, event, telemetry) and outcome',
    labelNames: ['kind', 'outcome'],
    registers: [this.registry],
  });

  private readonly claimsRefused = new Counter({
    name: 'lq_inventory_claims_refused_total',
    help: 'Heartbeats and events of a node naming a VM another node owns, refused, by claiming node',
    labelNames: ['node'],
    registers: [this.registry],
  });

  private readonly claimsAdopted = new Counter({
    name: 'lq_inventory_claims_adopted_total',
    help: 'VMs taken over from a node silent for LQ_VM_ADOPT_AFTER_MS, by the node that took them',
    labelNames: ['node'],
    registers: [this.registry],
  });

  constructor(@Inject(InventoryRepository) inventory: InventoryRepository) {
    collectDefaultMetrics({ register: this.registry });
    const log = this.log;
    new Gauge({
      name: 'lq_inventory_vms',
      help: 'VMs in the inventory by agent state',
      labelNames: ['agent_state'],
      registers: [this.registry],
      // Read at scrape time; a database outage leaves the gauge out rather than failing the scrape.
      async collect() {
        this.reset();
        try {
          const counts = await inventory.countVmsByAgentState();
          for (const state of new Set([...AGENT_STATES, ...counts.keys()])) {
            this.set({ agent_state: state }, counts.get(state) ?? 0);
          }
        } catch (err) {
          log.warn(`inventory gauge not updated: ${(err as Error).message}`);
        }
      },
    });
    new Gauge({
      name: 'lq_inventory_nodes',
      help: 'Nodes in the inventory, by whether their heartbeat is stale',
      labelNames: ['stale'],
      registers: [this.registry],
      async collect() {
        this.reset();
        try {
          const nodes = await inventory.listNodes();
          const stale = nodes.filter((n) => n.stale).length;
          this.set({ stale: 'true' }, stale);
          this.set({ stale: 'false' }, nodes.length - stale);
        } catch (err) {
          log.warn(`node gauge not updated: ${(err as Error).message}`);
        }
      },
    });
  }

  /** One finished guest operation; outcome is 'ok' or the error code. */
  observe(operation: string, outcome: string, seconds: number): void {
    this.operations.inc({ operation, outcome });
    this.durations.observe({ operation, outcome }, seconds);
  }

  /**
   * Runs one guest operation for a transport and records it: 'ok', or the VmGuestException
   * code it failed with ('INTERNAL' for anything else). Errors pass through unchanged.
   */
  async measure<T>(operation: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await work();
      this.observe(operation, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (err) {
      const outcome = err instanceof VmGuestException ? err.code : 'INTERNAL';
      this.observe(operation, outcome, (performance.now() - started) / 1000);
      throw err;
    }
  }

  /** One node daemon message handled by the inventory subscriber. */
  inventoryMessage(kind: string, outcome: string): void {
    this.inventoryMessages.inc({ kind, outcome });
  }

  /** A node's claim on a VM another node owns was refused. */
  claimRefused(node: string): void {
    this.claimsRefused.inc({ node });
  }

  /** A node took over a VM whose owner had gone silent. */
  claimAdopted(node: string): void {
    this.claimsAdopted.inc({ node });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
