import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { AuthErrorCode, AuthException } from '../auth.exception.js';
import { AuthService } from '../auth.service.js';
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
 * The bearer token of a request as passport-http-bearer read it (the REST API's strategy until
 * this guard read it itself: passport built a middleware and a strategy object per request):
 * `Authorization: Bearer <token>`, or an `access_token` body or query field; undefined when
 * there is none, or more than one, or the header is not two words.
 */
export function bearerTokenOf(
  req: Pick<Request, 'headers' | 'body' | 'query'>,
): string | undefined {
  let token: string | undefined;
  const header = req.headers?.authorization;
  if (header) {
    const parts = header.split(' ');
    if (parts.length !== 2) {
      return undefined;
    }
    if (/^Bearer$/i.test(parts[0]!)) {
      token = parts[1];
    }
  }
  for (const alt of [
    (req.body as { access_token?: unknown } | undefined)?.access_token,
    (req.query as { access_token?: unknown } | undefined)?.access_token,
  ]) {
    if (alt) {
      if (token || typeof alt !== 'string') {
        return undefined;
      }
      token = alt;
    }
  }
  return token || undefined;
}

/**
 * The global guard, deny by default: a route passes only if it declares @Public(), or the caller
 * authenticates (bearer: API key or access JWT, resolved by AuthService as the Connect and gRPC
 * interceptor does) and holds the route's @RequirePermission() somewhere (or the route is
 * @Authenticated()). A route that declares neither is refused for everyone. Failed
 * authentications and denials are audited.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(AUTH_AUDIT_HOOK) private readonly hook: AuthAuditHook,
    @Inject(AuthService) private readonly auth: AuthService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
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
    let principal: Principal;
    try {
      principal = await this.authenticate(req);
    } catch (err) {
      if (!(err instanceof AuthException && err.code === AuthErrorCode.AUTH_UNAVAILABLE)) {
        const header = req.headers.authorization ?? '';
        const method = /^bearer\s+lq_/i.test(header) ? 'api_key' : header ? 'jwt' : 'none';
        await this.hook.authFailed(origin, method, (err as Error).message);
      }
      throw err;
    }
    req.user = principal;
    if (permission && !holdsAnywhere(principal, permission)) {
      await this.hook.denied(origin, principal, permission, 'no binding grants it');
      throw AuthException.denied(permission, 'on any project');
    }
    return true;
  }

  /** The principal, or the AuthException canActivate audits and rethrows. */
  private async authenticate(req: Request): Promise<Principal> {
    const token = bearerTokenOf(req);
    if (token === undefined) {
      throw AuthException.unauthenticated(
        'missing bearer token (Authorization: Bearer <API key or access token>)',
      );
    }
    try {
      return await this.auth.authenticate(token);
    } catch (err) {
      if (err instanceof AuthException) {
        throw err;
      }
      throw AuthException.unauthenticated(err instanceof Error ? err.message : String(err));
    }
  }
}
