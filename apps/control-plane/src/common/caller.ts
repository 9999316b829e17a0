import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import {
  AuthErrorCode,
  AuthException,
  originOf,
  type AuthenticatedRequest,
  type Principal,
} from '@lq/auth';

/** Who is calling, from where, under which request id: every transport builds one. */
export interface Caller {
  principal: Principal;
  requestId: string;
  sourceIp: string;
}

/** The caller of a REST request the AccessGuard let through. */
export function restCaller(req: Request): Caller {
  const r = req as Request & AuthenticatedRequest;
  if (!r.user) {
    throw new AuthException(AuthErrorCode.UNAUTHENTICATED, 'not authenticated');
  }
  const origin = originOf(r);
  return { principal: r.user, requestId: origin.requestId, sourceIp: origin.sourceIp };
}

/** A REST handler's parameter: the authenticated caller (`@CurrentCaller() caller: Caller`). */
export const CurrentCaller = createParamDecorator((_: unknown, ctx: ExecutionContext): Caller =>
  restCaller(ctx.switchToHttp().getRequest()),
);
