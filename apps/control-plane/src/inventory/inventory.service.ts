import { Inject, Injectable } from '@nestjs/common';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import type { VM } from '@lq/proto';
import { InventoryErrorCode, InventoryException } from './inventory.exception.js';
import type { NodeView, VmLocation } from './inventory.types.js';
import { InventoryRepository } from './inventory.repository.js';

export type { NodeView, VmLocation };

/** Reads of the inventory that node daemons keep current (see InventorySubscriber). */
@Injectable()
export class InventoryService {
  /** Recent locations: one database read per VM per LQ_LOCATION_CACHE_MS, not per operation. */
  private readonly located = new Map<string, { at: VmLocation; until: number }>();

  constructor(
    @Inject(InventoryRepository) private readonly repo: InventoryRepository,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {}

  /** Where to send a VM's guest operations; VM_NOT_FOUND when no node has reported it. */
  async locate(vmId: string): Promise<VmLocation> {
    const now = Date.now();
    const hit = this.located.get(vmId);
    if (hit && hit.until > now) {
      return hit.at;
    }
    const found = await this.storeCall(() => this.repo.locate(vmId));
    if (!found) {
      this.located.delete(vmId);
      throw InventoryException.vmNotFound(vmId);
    }
    if (this.config.locationCacheMs > 0) {
      if (this.located.size >= 100_000) {
        this.located.clear();
      }
      this.located.set(vmId, { at: found, until: now + this.config.locationCacheMs });
    }
    return found;
  }

  /** Forgets a VM's cached location (its node disowned it, or it changed project). */
  forget(vmId: string): void {
    this.located.delete(vmId);
  }

  /**
   * Moves a VM to another node (PUT /api/vms/:id/node): that node's claims are accepted from
   * now on. 'no-node' when the node never reported, 'no-vm' when the VM is not in the inventory.
   */
  async moveVm(
    vmId: string,
    nodeId: string,
  ): Promise<{ previousNode: string; projectId: string } | 'no-node' | 'no-vm'> {
    if (!(await this.storeCall(() => this.repo.nodeExists(nodeId)))) {
      return 'no-node';
    }
    const moved = await this.storeCall(() => this.repo.moveVm(vmId, nodeId));
    this.forget(vmId);
    return moved ?? 'no-vm';
  }

  /** Moves a VM to a project (it must exist); the previous project, or undefined: no VM. */
  async setVmProject(vmId: string, projectId: string): Promise<string | undefined> {
    if (!(await this.storeCall(() => this.repo.projectExists(projectId)))) {
      throw new InventoryException(
        InventoryErrorCode.NOT_FOUND,
        `project ${projectId} does not exist`,
      );
    }
    const previous = await this.storeCall(() => this.repo.setVmProject(vmId, projectId));
    this.forget(vmId);
    return previous;
  }

  /** Replaces a VM's labels; false when it is not in the inventory. */
  setLabels(vmId: string, labels: Record<string, string>): Promise<boolean> {
    return this.storeCall(() => this.repo.setLabels(vmId, labels));
  }

  /** Since when each agent has been connected. */
  connectedSince(ids: string[]): Promise<Map<string, string | null>> {
    return this.storeCall(() => this.repo.connectedSince(ids));
  }

  /** Whether the inventory's database answers (health). */
  async reachable(): Promise<boolean> {
    try {
      await this.repo.ping();
      return true;
    } catch {
      return false;
    }
  }

  listVms(projects: 'all' | string[] = 'all'): Promise<VM[]> {
    return this.storeCall(() => this.repo.listVms(projects));
  }

  getVm(id: string): Promise<VM | undefined> {
    return this.storeCall(() => this.repo.getVm(id));
  }

  listNodes(): Promise<NodeView[]> {
    return this.storeCall(() => this.repo.listNodes());
  }

  /** A database that does not answer is 503 (STORE_UNAVAILABLE), not an internal error. */
  private async storeCall<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof InventoryException) {
        throw err;
      }
      throw new InventoryException(
        InventoryErrorCode.STORE_UNAVAILABLE,
        `the inventory database cannot be read: ${(err as Error).message}`,
      );
    }
  }
}
