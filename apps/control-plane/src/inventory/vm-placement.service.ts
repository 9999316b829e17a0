import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { projectsWith } from '@lq/auth';
import { isSubjectToken } from '@lq/proto';
import { AdminScopeService } from '../access/admin-scope.service.js';
import { VmAccessService } from '../access/vm-access.service.js';
import { actorOf } from '../audit/audit-actor.js';
import type { Caller } from '../common/caller.js';
import { InventoryErrorCode, InventoryException } from './inventory.exception.js';
import { InventoryService } from './inventory.service.js';
import { parseLabels } from './labels.js';

/**
 * Where a VM belongs: its project (who may touch it), its node (where its operations go) and
 * its labels (what fleet runs target). Project and node are a global admin's to change; labels
 * an admin of the VM's project. Every change is an `admin` row, every refusal a `denied` one.
 */
@Injectable()
export class VmPlacementService {
  constructor(
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(AdminScopeService) private readonly scopes: AdminScopeService,
    @Inject(VmAccessService) private readonly access: VmAccessService,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /** Moves a VM between projects: it changes who may touch the VM. */
  async setProject(caller: Caller, vmId: string, projectId: string): Promise<void> {
    checkVmId(vmId);
    await this.scopes.requireGlobal(caller, 'vm.set_project', 'moving a VM between projects', {
      vmId,
    });
    const previous = await this.inventory.setVmProject(vmId, projectId);
    if (previous === undefined) {
      throw InventoryException.vmNotFound(vmId);
    }
    await this.record(
      caller,
      'vm.set_project',
      { project: projectId, previous_project: previous },
      vmId,
      projectId,
    );
  }

  /**
   * Moves a VM to another node, the explicit step a migration needs (the inventory refuses a
   * node's claim on a VM another node owns). The node decides where the VM's commands, files
   * and passwords go. Returns the previous node.
   */
  async setNode(caller: Caller, vmId: string, nodeId: string): Promise<string> {
    checkVmId(vmId);
    await this.scopes.requireGlobal(caller, 'vm.set_node', 'moving a VM between nodes', { vmId });
    const moved = await this.inventory.moveVm(vmId, nodeId);
    if (moved === 'no-node') {
      throw new InventoryException(
        InventoryErrorCode.NODE_NOT_FOUND,
        `node ${nodeId} is not in the inventory`,
      );
    }
    if (moved === 'no-vm') {
      throw InventoryException.vmNotFound(vmId);
    }
    await this.record(
      caller,
      'vm.set_node',
      { node: nodeId, previous_node: moved.previousNode },
      vmId,
      moved.projectId,
    );
    return moved.previousNode;
  }

  /**
   * Replaces a VM's labels: an admin of the VM's project. A VM the caller cannot see answers as
   * one that does not exist.
   */
  async setLabels(
    caller: Caller,
    vmId: string,
    labels: Record<string, string>,
  ): Promise<{ vm_id: string; labels: Record<string, string> }> {
    checkVmId(vmId);
    const parsed = Object.keys(labels).length === 0 ? {} : parseLabels(labels);
    const where = await this.inventory.locate(vmId);
    const scope = { vmId, projectId: where.projectId, nodeId: where.nodeId };
    const visible = projectsWith(caller.principal, 'vm.read');
    if (visible !== 'all' && !visible.includes(where.projectId)) {
      await this.access.deny(caller, 'admin', scope, 'vm.set_labels', 'VM not visible');
      throw InventoryException.vmNotFound(vmId);
    }
    await this.access.require(caller, 'admin', scope, 'vm.set_labels');
    if (!(await this.inventory.setLabels(vmId, parsed))) {
      throw InventoryException.vmNotFound(vmId);
    }
    await this.record(caller, 'vm.set_labels', { labels: parsed }, vmId, where.projectId);
    return { vm_id: vmId, labels: parsed };
  }

  private record(
    caller: Caller,
    operation: string,
    params: Record<string, unknown>,
    vmId: string,
    projectId: string,
  ): Promise<void> {
    return this.audit.record({
      kind: 'admin',
      ...actorOf(caller.principal, caller),
      operation,
      params,
      vmId,
      projectId,
      status: 'ok',
    });
  }
}

function checkVmId(id: string): void {
  if (!isSubjectToken(id)) {
    throw InventoryException.invalid('vm id must be 1-128 letters, digits, _ or -');
  }
}
