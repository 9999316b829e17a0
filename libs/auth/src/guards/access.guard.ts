import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { Request, Response } from 'express';
import { attemptedAuthMethod } from '../api-key.js';
import { AuthErrorCode, AuthException } from '../auth.exception.js';
import {
  AUTHENTICATED_ONLY,
  IS_PUBLIC,
  REQUIRED_PERMISSION,
  type AuthenticatedRequest,
} from '../decorators/access.decorators.js';
import type { Permission } from '../permissions.js';
import { holdsAnywhere, type Principal } from '../principal.js';
import {
  AUTH_AUDIT_HOOK,
  vmIdOf,
  type AuthAuditHook,
  type RequestOrigin,
} from './auth-audit.hook.js';

/**
 * The request's origin for the audit trail; the request id is minted here, once. The route is
 * the matched pattern ("GET /api/vms/:id"), never the URL as sent: that is the caller's text,
 * unbounded, and would let anyone write what they like into the audit trail.
 */
export function originOf(request: Request): RequestOrigin {
  const req = request as Request & { lqRequestId?: string };
  req.lqRequestId ??= randomUUID();
  const route: unknown = (request as { route?: unknown }).route;
  const pattern =
    typeof route === 'object' && route !== null && 'path' in route && typeof route.path === 'string'
      ? route.path
      : undefined;
  const path: string = pattern ?? (req.originalUrl ?? req.url ?? '').split('?')[0] ?? '';
  const params = req.params as Record<string, unknown> | undefined;
  return {
    requestId: req.lqRequestId,
    sourceIp: req.ip ?? req.socket?.remoteAddress ?? '',
    route: `${req.method} ${path.length > 120 ? `${path.slice(0, 119)}…` : path}`,
    vmId: pattern?.startsWith('/api/vms/:id') ? vmIdOf(params?.id) : undefined,
  };
}

/**
 * The global guard, deny by default: a route passes only if it declares @Public(), or the caller
 * authenticates (passport bearer: API key or access JWT) and holds the route's
 * @RequirePermission() somewhere (or the route is @Authenticated()). A route that declares
 * neither is refused for everyone. Failed authentications and denials are audited.
 */
@Injectable()
export class AccessGuard extends AuthGuard('bearer') {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(AUTH_AUDIT_HOOK) private readonly hook: AuthAuditHook,
  ) {
    super();
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    const req = context.switchToHttp().getRequest<Request & AuthenticatedRequest>();
    const origin = originOf(req);
    context.switchToHttp().getResponse<Response>().setHeader?.('x-request-id', origin.requestId);
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      return true;
    }
    const permission = this.reflector.getAllAndOverride<Permission | undefined>(
      REQUIRED_PERMISSION,
      targets,
    );
    const anyCaller = this.reflector.getAllAndOverride<boolean>(AUTHENTICATED_ONLY, targets);
    if (!permission && !anyCaller) {
      throw new AuthException(
        AuthErrorCode.PERMISSION_DENIED,
        `${origin.route} declares no permission, so it is refused (deny by default)`,
      );
    }
    try {
      if ((req.query as Record<string, unknown> | undefined)?.access_token !== undefined) {
        // passport-http-bearer takes ?access_token= too (RFC 6750 §2.3, "SHOULD NOT be used"):
        // a URL ends up in access logs, proxies and browser history, so the token with it.
        throw AuthException.unauthenticated(
          'access tokens are not taken in the URL (access logs and proxies keep it): send Authorization: Bearer <token>',
        );
      }
      await (super.canActivate(context) as Promise<boolean>);
    } catch (err) {
      if (!(err instanceof AuthException && err.code === AuthErrorCode.AUTH_UNAVAILABLE)) {
        const method = attemptedAuthMethod(req.headers.authorization);
        await this.hook.authFailed(origin, method, (err as Error).message);
      }
      throw err;
    }
    const principal = req.user as Principal;
    if (permission && !holdsAnywhere(principal, permission)) {
      await this.hook.denied(origin, principal, permission, 'no binding grants it');
      throw AuthException.denied(permission, 'on any project');
    }
    return true;
  }

  /** passport's verdict: the principal, or the AuthException canActivate audits and rethrows. */
  override handleRequest<T = Principal>(err: unknown, user: unknown): T {
    if (user && !err) {
      return user as T;
    }
    if (err instanceof AuthException) {
      throw err;
    }
    throw AuthException.unauthenticated(
      err instanceof Error
        ? err.message
        : 'missing bearer token (Authorization: Bearer <API key or access token>)',
    );
  }
}
