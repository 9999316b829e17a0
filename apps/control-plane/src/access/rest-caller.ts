import type { Request } from 'express';
import { AuthErrorCode, AuthException, originOf, type AuthenticatedRequest } from '@lq/auth';
import type { Caller } from './vm-access.service.js';

/** The caller of a REST request the AccessGuard let through. */
export function restCaller(req: Request): Caller {
  const r = req as Request & AuthenticatedRequest;
  if (!r.user) {
    throw new AuthException(AuthErrorCode.UNAUTHENTICATED, 'not authenticated');
  }
  const origin = originOf(r);
  return { principal: r.user, requestId: origin.requestId, sourceIp: origin.sourceIp };
}
