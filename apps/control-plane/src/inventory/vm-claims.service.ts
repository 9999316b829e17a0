import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { InventoryMetrics } from './inventory.metrics.js';
import type { AdoptedVm, ClaimResult, RefusedClaim } from './inventory.repository.js';

/** How a node's claim arrived. */
export type ClaimSource = 'heartbeat' | 'event';

// Keys remembered for the report interval; past this many the memory starts afresh (a flood of
// distinct claims then logs again, which is what it deserves).
const REMEMBERED_MAX = 10_000;

/**
 * What the inventory does when a node names a VM another node owns: every refusal is counted
 * (lq_inventory_claims_refused_total{node}); the first of each node and VM per
 * LQ_CLAIM_REPORT_INTERVAL_MS is also logged and audited (a `denied` row, actor `node:<id>`,
 * operation `inventory.claim`), so a node that keeps listing a VM every few seconds does not
 * flood either. An adoption (owner silent for LQ_VM_ADOPT_AFTER_MS) is always logged and audited.
 */
@Injectable()
export class VmClaimsService {
  private readonly log = new Logger('inventory');
  private readonly reported = new Map<string, number>();

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(InventoryMetrics) private readonly metrics: InventoryMetrics,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /** Reports what a heartbeat or event of `nodeId` claimed and did not (or did) get. */
  report(nodeId: string, via: ClaimSource, claims: ClaimResult, now = Date.now()): void {
    for (const r of claims.refused) {
      this.refused(nodeId, via, r, now);
    }
    for (const a of claims.adopted) {
      this.adopted(nodeId, via, a);
    }
  }

  private refused(nodeId: string, via: ClaimSource, r: RefusedClaim, now: number): void {
    this.metrics.claimRefused(nodeId);
    const key = `${nodeId}\n${r.vmId}`;
    const last = this.reported.get(key);
    if (last !== undefined && now - last < this.config.claimReportIntervalMs) {
      return;
    }
    if (this.reported.size >= REMEMBERED_MAX) {
      this.reported.clear();
    }
    this.reported.set(key, now);
    const why = `VM ${r.vmId} belongs to node ${r.owner}; a move is PUT /api/vms/${r.vmId}/node`;
    this.log.warn(`refused node ${nodeId}'s claim on VM ${r.vmId} (${via}): ${why}`);
    void this.audit.record({
      kind: 'denied',
      ...nodeActor(nodeId),
      operation: 'inventory.claim',
      vmId: r.vmId,
      nodeId,
      projectId: r.projectId,
      params: { owner: r.owner, via },
      status: 'CLAIM_REFUSED',
      error: why,
    });
  }

  private adopted(nodeId: string, via: ClaimSource, a: AdoptedVm): void {
    this.metrics.claimAdopted(nodeId);
    this.log.warn(
      `node ${nodeId} took over VM ${a.vmId} (${via}) from node ${a.previousNode}, silent for over ${this.config.vmAdoptAfterMs} ms`,
    );
    void this.audit.record({
      kind: 'admin',
      ...nodeActor(nodeId),
      operation: 'inventory.adopt',
      vmId: a.vmId,
      nodeId,
      projectId: a.projectId,
      params: { previous_node: a.previousNode, via },
      status: 'ok',
    });
  }
}

/** The audit trail's actor for what a node daemon published (authenticated by NATS alone). */
function nodeActor(nodeId: string) {
  return { actor: `node:${nodeId}`, authMethod: 'nats', sourceIp: '', requestId: randomUUID() };
}
