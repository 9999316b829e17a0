import type { AuditActor } from '@lq/audit';
import type { Principal, RequestOrigin } from '@lq/auth';

/** The audit trail's view of a caller: username, how it signed in (which key), from where. */
export function actorOf(
  principal: Principal,
  origin: Pick<RequestOrigin, 'requestId' | 'sourceIp'>,
): AuditActor {
  return {
    actor: principal.username,
    authMethod: principal.authMethod === 'api_key' ? `api_key:${principal.keyPrefix ?? ''}` : 'jwt',
    sourceIp: origin.sourceIp,
    requestId: origin.requestId,
  };
}
