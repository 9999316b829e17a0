import { SetMetadata, createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Permission } from '../permissions.js';
import type { Principal } from '../principal.js';

export const IS_PUBLIC = 'lq:public';
export const REQUIRED_PERMISSION = 'lq:permission';
export const AUTHENTICATED_ONLY = 'lq:authenticated';

/** Opts a route out of authentication (health, metrics, sign-in, docs). */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/**
 * The permission a route needs. The guard checks the caller holds it on some project (or
 * globally); per-VM routes check the VM's own project in their service.
 */
export const RequirePermission = (permission: Permission) =>
  SetMetadata(REQUIRED_PERMISSION, permission);

/** Any signed-in caller, whatever its roles (e.g. "who am I"). */
export const Authenticated = () => SetMetadata(AUTHENTICATED_ONLY, true);

/** What the guard attaches to a request. */
export interface AuthenticatedRequest {
  user?: Principal;
  lqRequestId?: string;
}

export const CurrentPrincipal = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): Principal => {
    const req = ctx.switchToHttp().getRequest<AuthenticatedRequest>();
    if (!req.user) {
      throw new Error('CurrentPrincipal on a route without authentication');
    }
    return req.user;
  },
);
