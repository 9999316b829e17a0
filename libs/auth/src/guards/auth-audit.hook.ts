import type { Permission } from '../permissions.js';
import type { Principal } from '../principal.js';

/** Where a request came from, for the audit trail. */
export interface RequestOrigin {
  requestId: string;
  sourceIp: string;
  /** e.g. "POST /api/vms/x/execute" or "VMService/ExecuteScript". */
  route: string;
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
