import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import type { AuthAuditHook, Permission, Principal, RequestOrigin } from '@lq/auth';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { actorOf } from './audit-actor.js';
import { AuthFailureSampler } from './auth-failure-sampler.js';

const MAX_TEXT = 200;

function bounded(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;
}

/**
 * Failed sign-ins and denials go to the audit trail like every guest operation. Failed
 * authentications are sampled (AuthFailureSampler): a flood of bad tokens costs a bounded
 * number of rows plus one summary row per address and minute, never the attacker's URL.
 */
@Injectable()
export class AuditAuthHook implements AuthAuditHook, OnApplicationShutdown {
  private readonly sampler: AuthFailureSampler;
  private readonly timer: NodeJS.Timeout;

  constructor(
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(CONTROL_PLANE_CONFIG) config: ControlPlaneConfig,
  ) {
    this.sampler = new AuthFailureSampler({
      perAddress: config.authFailureAudit.perAddressPerMinute,
      total: config.authFailureAudit.perMinute,
    });
    this.timer = setInterval(() => this.sampler.roll(Date.now(), this.summarise), 10_000);
    this.timer.unref();
  }

  authFailed(origin: RequestOrigin, method: string, reason: string): Promise<void> {
    if (!this.sampler.admit(origin.sourceIp, Date.now(), this.summarise)) {
      return Promise.resolve();
    }
    return this.audit.record({
      kind: 'auth_failed',
      actor: '',
      authMethod: bounded(method),
      sourceIp: origin.sourceIp,
      requestId: origin.requestId,
      operation: bounded(origin.route),
      error: bounded(reason),
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
      operation: bounded(origin.route),
      vmId: origin.vmId,
      params: { permission },
      status: 'PERMISSION_DENIED',
      error: bounded(`missing ${permission}: ${detail}`),
    });
  }

  onApplicationShutdown(): void {
    // The audit writer has closed by now: the last minute's uncounted failures are not written.
    clearInterval(this.timer);
  }

  private readonly summarise = (counts: Array<[string, number]>): void => {
    for (const [address, count] of counts) {
      void this.audit.record({
        kind: 'auth_failed',
        actor: '',
        authMethod: '',
        sourceIp: address === '(many)' ? '' : address,
        requestId: '',
        operation: 'auth.failures_not_itemised',
        params: { count, address },
        error: `${count} more failed authentications in the last minute (not itemised)`,
        status: 'UNAUTHENTICATED',
      });
    }
  };
}
