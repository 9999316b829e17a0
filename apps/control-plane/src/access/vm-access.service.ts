import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import {
  AuthException,
  execRestrictionViolation,
  grantsOn,
  type Permission,
  type Principal,
} from '@lq/auth';
import { actorOf } from '../audit/audit-actor.js';

/** Who is calling, from where, under which request id: every transport builds one. */
export interface Caller {
  principal: Principal;
  requestId: string;
  sourceIp: string;
}

export interface VmScope {
  vmId: string;
  projectId: string;
  nodeId?: string;
}

/**
 * Per-VM authorization: the route's guard has checked the caller holds the permission somewhere;
 * here the VM's own project decides. Denials are audited and answered 403 naming what is missing.
 */
@Injectable()
export class VmAccessService {
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

  async require(
    caller: Caller,
    permission: Permission,
    vm: VmScope,
    operation: string,
  ): Promise<void> {
    if (grantsOn(caller.principal, permission, vm.projectId).length === 0) {
      await this.deny(caller, permission, vm, operation, `not granted on project ${vm.projectId}`);
      throw AuthException.denied(permission, `on project ${vm.projectId} (VM ${vm.vmId})`);
    }
  }

  /** guest.exec and the binding's limits on whom a command may run as. */
  async requireExec(caller: Caller, vm: VmScope, runAsUser: string): Promise<void> {
    await this.require(caller, 'guest.exec', vm, 'execute');
    const why = execRestrictionViolation(
      grantsOn(caller.principal, 'guest.exec', vm.projectId),
      runAsUser,
    );
    if (why) {
      await this.deny(caller, 'guest.exec', vm, 'execute', why);
      throw AuthException.denied(
        'guest.exec',
        `as ${runAsUser || 'the agent’s default user (root)'}: ${why}`,
      );
    }
  }

  private deny(
    caller: Caller,
    permission: Permission,
    vm: VmScope,
    operation: string,
    detail: string,
  ): Promise<void> {
    return this.audit.record({
      kind: 'denied',
      ...actorOf(caller.principal, caller),
      vmId: vm.vmId,
      nodeId: vm.nodeId,
      projectId: vm.projectId,
      operation,
      params: { permission },
      status: 'PERMISSION_DENIED',
      error: `missing ${permission}: ${detail}`,
    });
  }
}
