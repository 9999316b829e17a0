import { Inject, Injectable } from '@nestjs/common';
import { isSubjectToken, type VM } from '@lq/proto';
import { VmAccessService } from '../access/vm-access.service.js';
import type { Caller } from '../common/caller.js';
import { InventoryException } from './inventory.exception.js';
import { InventoryService } from './inventory.service.js';

/** Reads of one VM, checked against its project (vm.read), for every transport. */
@Injectable()
export class VmReadService {
  constructor(
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(VmAccessService) private readonly access: VmAccessService,
  ) {}

  async getVm(caller: Caller, id: string): Promise<VM> {
    const vm = isSubjectToken(id) ? await this.inventory.getVm(id) : undefined;
    if (!vm) {
      throw InventoryException.vmNotFound(id);
    }
    await this.access.require(
      caller,
      'vm.read',
      { vmId: vm.id, projectId: vm.projectId, nodeId: vm.nodeId },
      'vm.read',
    );
    return vm;
  }
}
