import type { Permission } from '../permissions.js';
import type { Principal } from '../principal.js';

/** Where a request came from, for the audit trail. */
export interface RequestOrigin {
  requestId: string;
  sourceIp: string;
  /** The route's pattern, e.g. "POST /api/vms/:id/execute" or "VMService/ExecuteScript". */
  route: string;
  /** The VM the request names (a well-formed id), so a denial shows up under the VM. */
  vmId?: string;
}

const VM_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** `id` when it is a well-formed VM id (what the audit trail may record), else undefined. */
export function vmIdOf(id: unknown): string | undefined {
  return typeof id === 'string' && VM_ID.test(id) ? id : undefined;
}

/**
 * What authentication and authorization report (the audit trail implements it). The promises
 * settle once the row is written or handed to the background retry; they never reject.
 */
export interface AuthAuditHook {
  authFailed(origin: RequestOrigin, method: string, reason: string): Promise<void>;
  denied(
    origin: RequestOrigin,
    principal: Principal,
    permission: Permission,
    detail: string,
  ): Promise<void>;
}

export const AUTH_AUDIT_HOOK = Symbol('AUTH_AUDIT_HOOK');
