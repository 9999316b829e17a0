import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { AuthException, isGlobalAdmin, projectsWith } from '@lq/auth';
import { actorOf } from '../audit/audit-actor.js';
import type { Caller } from '../common/caller.js';

/**
 * The two scopes of administration: a global admin (an admin binding without a project) and an
 * admin of one project. Every refusal is a `denied` row in the audit trail.
 */
@Injectable()
export class AdminScopeService {
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

  /** 403 unless the caller is a global admin; `what` names the act in the message. */
  async requireGlobal(
    caller: Caller,
    operation: string,
    what: string,
    where: { vmId?: string; projectId?: string } = {},
  ): Promise<void> {
    if (!isGlobalAdmin(caller.principal)) {
      const why = `${what} needs a global admin binding`;
      await this.deny(caller, operation, why, where);
      throw AuthException.denied('admin', `globally (${why})`);
    }
  }

  /** 403 unless the caller administers `projectId` (or every project). */
  async requireProject(
    caller: Caller,
    projectId: string,
    operation: string,
    where: { vmId?: string } = {},
  ): Promise<void> {
    const scope = projectsWith(caller.principal, 'admin');
    if (scope !== 'all' && !scope.includes(projectId)) {
      await this.deny(caller, operation, `not an admin of project ${projectId}`, {
        ...where,
        projectId,
      });
      throw AuthException.denied('admin', `on project ${projectId}`);
    }
  }

  /** A `denied` row for a refusal decided elsewhere (e.g. "another user's API keys"). */
  deny(
    caller: Caller,
    operation: string,
    detail: string,
    where: { vmId?: string; projectId?: string } = {},
  ): Promise<void> {
    return this.audit.record({
      kind: 'denied',
      ...actorOf(caller.principal, caller),
      operation,
      vmId: where.vmId,
      projectId: where.projectId,
      params: { permission: 'admin' },
      status: 'PERMISSION_DENIED',
      error: `missing admin: ${detail}`,
    });
  }
}
