import { Inject, Injectable } from '@nestjs/common';
import { isSubjectToken, type VM } from '@lq/proto';
import { InventoryService } from '../inventory/inventory.service.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { VmAccessService, type Caller } from './vm-access.service.js';

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
      throw new VmGuestException(VmGuestErrorCode.VM_NOT_FOUND, `VM ${id} is not in the inventory`);
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
