import { Inject, Injectable } from '@nestjs/common';
import { create } from '@bufbuild/protobuf';
import { AuditService } from '@lq/audit';
import {
  AuthException,
  grantsOn,
  guestGrant,
  obviousRunAsViolation,
  type GuestGrant,
  type Permission,
} from '@lq/auth';
import { FileLimitsSchema, RunAsLimitsSchema, type FileLimits, type RunAsLimits } from '@lq/proto';
import { actorOf } from '../audit/audit-actor.js';
import type { Caller } from '../common/caller.js';

export type { Caller };

export interface VmScope {
  vmId: string;
  projectId: string;
  nodeId?: string;
}

/**
 * The limits of a grant as the agent enforces them on an ExecuteRequest or a
 * SetUserPasswordRequest; undefined when there are none (an admin's).
 */
export function runAsLimitsOf(grant: GuestGrant): RunAsLimits | undefined {
  if (grant.runAs === undefined && grant.anyGroup) {
    return undefined;
  }
  return create(RunAsLimitsSchema, {
    rules: (grant.runAs ?? []).map((r) => ({ nonRoot: r.nonRoot, users: r.users ?? [] })),
    anyGroup: grant.anyGroup,
  });
}

/** The limits of a grant on a file operation; undefined when there are none. */
export function fileLimitsOf(grant: GuestGrant): FileLimits | undefined {
  if (grant.filePaths === undefined && grant.runAs === undefined) {
    return undefined;
  }
  // A caller held to some run-as users must not make a set-id program it could then run.
  return create(FileLimitsSchema, {
    roots: grant.filePaths ?? [],
    noSetid: grant.runAs !== undefined,
  });
}

function isUnder(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(`${root}/`);
}

/**
 * Per-VM authorization: the route's guard has checked the caller holds the permission somewhere;
 * here the VM's own project decides, with the limits of the bindings that grant it. Denials are
 * audited and answered 403 naming what is missing.
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

  /** `permission` on the VM's project and the limits it comes with (403, audited, otherwise). */
  async requireGuest(
    caller: Caller,
    permission: Permission,
    vm: VmScope,
    operation: string,
  ): Promise<GuestGrant> {
    const result = guestGrant(caller.principal, permission, vm.projectId);
    if (!result.granted) {
      await this.deny(caller, permission, vm, operation, result.why);
      throw AuthException.denied(
        permission,
        `on project ${vm.projectId} (VM ${vm.vmId}): ${result.why}`,
      );
    }
    return result.grant;
  }

  /**
   * guest.exec and the bindings' limits on whom a command may run as. The obvious refusals are
   * answered here; the agent judges the identity it resolves with the limits sent along.
   */
  async requireExec(caller: Caller, vm: VmScope, runAsUser: string): Promise<GuestGrant> {
    const grant = await this.requireGuest(caller, 'guest.exec', vm, 'execute');
    const why = grant.runAs && obviousRunAsViolation(grant.runAs, runAsUser);
    if (why) {
      await this.deny(caller, 'guest.exec', vm, 'execute', why);
      throw AuthException.denied(
        'guest.exec',
        `as ${runAsUser || 'the agent’s default user (root)'}: ${why}`,
      );
    }
    return grant;
  }

  /**
   * A file operation's grant; paths outside the binding's file_paths and set-id modes or owners
   * for a caller held to some run-as users are refused here (the agent checks again on the
   * resolved path).
   */
  async requireFile(
    caller: Caller,
    permission: 'guest.file.read' | 'guest.file.write',
    vm: VmScope,
    operation: string,
    file: { path: string; mode?: number; owner?: boolean; also?: string[] },
  ): Promise<GuestGrant> {
    const grant = await this.requireGuest(caller, permission, vm, operation);
    let why: string | undefined;
    const outside = grant.filePaths
      ? [file.path, ...(file.also ?? [])].find(
          (p) => !grant.filePaths!.some((root) => isUnder(p, root)),
        )
      : undefined;
    if (grant.filePaths && outside !== undefined) {
      why = `${outside} is outside the binding's file_paths (${grant.filePaths.join(', ')})`;
    } else if (grant.runAs && file.mode !== undefined && (file.mode & 0o6000) !== 0) {
      why = 'a binding limited to some run-as users may not set set-user-ID or set-group-ID bits';
    } else if (grant.runAs && file.owner) {
      why = 'a binding limited to some run-as users may not set a file’s owner';
    }
    if (why) {
      await this.deny(caller, permission, vm, operation, why);
      throw AuthException.denied(permission, `on VM ${vm.vmId}: ${why}`);
    }
    return grant;
  }

  /** A denial that concerns no one VM (a listing), recorded with the project it names if any. */
  denyUnscoped(
    caller: Caller,
    permission: Permission,
    operation: string,
    detail: string,
    projectId?: string,
  ): Promise<void> {
    return this.audit.record({
      kind: 'denied',
      ...actorOf(caller.principal, caller),
      projectId,
      operation,
      params: { permission },
      status: 'PERMISSION_DENIED',
      error: `missing ${permission}: ${detail}`,
    });
  }

  /** Records a denial the caller's service decided (the guard's own are recorded there). */
  deny(
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
