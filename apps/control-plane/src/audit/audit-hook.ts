import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import type { AuthAuditHook, Permission, Principal, RequestOrigin } from '@lq/auth';
import { actorOf } from './audit-actor.js';

/** Failed sign-ins and denials go to the audit trail like every guest operation. */
@Injectable()
export class AuditAuthHook implements AuthAuditHook {
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

  authFailed(origin: RequestOrigin, method: string, reason: string): Promise<void> {
    return this.audit.record({
      kind: 'auth_failed',
      actor: '',
      authMethod: method,
      sourceIp: origin.sourceIp,
      requestId: origin.requestId,
      operation: origin.route,
      error: reason,
      status: 'UNAUTHENTICATED',
    });
  }

  denied(
    origin: RequestOrigin,
    principal: Principal,
    permission: Permission,
    detail: string,
  ): Promise<void> {
    return this.audit.record({
      kind: 'denied',
      ...actorOf(principal, origin),
      operation: origin.route,
      params: { permission },
      status: 'PERMISSION_DENIED',
      error: `missing ${permission}: ${detail}`,
    });
  }
}
