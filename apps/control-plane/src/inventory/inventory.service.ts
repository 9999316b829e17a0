import { Inject, Injectable } from '@nestjs/common';
import type { VM } from '@lq/proto';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { InventoryRepository } from './inventory.repository.js';

export interface VmLocation {
  nodeId: string;
  /** Largest file chunk the node's daemon relays. */
  fileChunkMaxBytes: number;
  agentState: string;
}

export interface NodeView {
  id: string;
  hostname: string;
  daemonVersion: string;
  lastHeartbeatAt: string;
  stale: boolean;
  vmCount: number;
  fileChunkMaxBytes: number;
}

/** Reads of the inventory that node daemons keep current (see InventorySubscriber). */
@Injectable()
export class InventoryService {
  constructor(@Inject(InventoryRepository) private readonly repo: InventoryRepository) {}

  /** Where to send a VM's guest operations; VM_NOT_FOUND when no node has reported it. */
  async locate(vmId: string): Promise<VmLocation> {
    const found = await this.repo.locate(vmId);
    if (!found) {
      throw new VmGuestException(
        VmGuestErrorCode.VM_NOT_FOUND,
        `VM ${vmId} is not in the inventory`,
      );
    }
    return found;
  }

  listVms(): Promise<VM[]> {
    return this.repo.listVms();
  }

  getVm(id: string): Promise<VM | undefined> {
    return this.repo.getVm(id);
  }

  listNodes(): Promise<NodeView[]> {
    return this.repo.listNodes();
  }
}
