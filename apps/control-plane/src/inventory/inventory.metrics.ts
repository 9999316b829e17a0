import { Inject, Injectable, Logger } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { MetricsService } from '../metrics/metrics.service.js';
import { InventoryRepository } from './inventory.repository.js';

const AGENT_STATES = ['ready', 'connecting', 'disconnected', 'gone'];

/** The inventory's Prometheus metrics, registered in the control plane's registry. */
@Injectable()
export class InventoryMetrics {
  private readonly log = new Logger('metrics');
  private readonly messages: Counter<'kind' | 'outcome'>;
  private readonly claimsRefused: Counter<'node'>;
  private readonly claimsAdopted: Counter<'node'>;

  constructor(
    @Inject(MetricsService) metrics: MetricsService,
    @Inject(InventoryRepository) inventory: InventoryRepository,
  ) {
    const registers = [metrics.registry];
    this.messages = new Counter({
      name: 'lq_inventory_messages_total',
      help: 'Node daemon messages by kind (heartbeat, event, telemetry) and outcome',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.claimsRefused = new Counter({
      name: 'lq_inventory_claims_refused_total',
      help: 'Heartbeats and events of a node naming a VM another node owns, refused, by claiming node',
      labelNames: ['node'],
      registers,
    });
    this.claimsAdopted = new Counter({
      name: 'lq_inventory_claims_adopted_total',
      help: 'VMs taken over from a node silent for LQ_VM_ADOPT_AFTER_MS, by the node that took them',
      labelNames: ['node'],
      registers,
    });
    const log = this.log;
    new Gauge({
      name: 'lq_inventory_vms',
      help: 'VMs in the inventory by agent state',
      labelNames: ['agent_state'],
      registers,
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
      name: 'lq_agent_version_info',
      help: 'VMs whose agent runs a version, by version and build target (VMs gone left out)',
      labelNames: ['version', 'target'],
      registers,
      async collect() {
        this.reset();
        try {
          for (const r of await inventory.countVmsByAgentVersion()) {
            this.set({ version: r.version || 'unknown', target: r.target || 'unknown' }, r.n);
          }
        } catch (err) {
          log.warn(`agent version gauge not updated: ${(err as Error).message}`);
        }
      },
    });
    new Gauge({
      name: 'lq_inventory_nodes',
      help: 'Nodes in the inventory, by whether their heartbeat is stale',
      labelNames: ['stale'],
      registers,
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

  /** One node daemon message handled by the inventory subscriber. */
  message(kind: string, outcome: string): void {
    this.messages.inc({ kind, outcome });
  }

  /** A node's claim on a VM another node owns was refused. */
  claimRefused(node: string): void {
    this.claimsRefused.inc({ node });
  }

  /** A node took over a VM whose owner had gone silent. */
  claimAdopted(node: string): void {
    this.claimsAdopted.inc({ node });
  }
}
