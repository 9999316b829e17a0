import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  createContextKey,
  createContextValues,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
} from '@connectrpc/connect';
import {
  AUTH_AUDIT_HOOK,
  attemptedAuthMethod,
  AuthErrorCode,
  AuthException,
  AuthService,
  holdsAnywhere,
  vmIdOf,
  type AuthAuditHook,
  type Permission,
  type Principal,
  type RequestOrigin,
} from '@lq/auth';
import { VMService } from '@lq/proto';
import type { Caller } from '../common/caller.js';
import { CONNECT_SPECS } from '../guest-ops/operations/index.js';
import { REFLECTION_SERVICES } from './grpc-reflection.js';

const PRINCIPAL = createContextKey<Principal | undefined>(undefined);
const ORIGIN = createContextKey<RequestOrigin | undefined>(undefined);

/**
 * The permission each Connect/gRPC method needs; 'public' opts out. A method missing here is
 * refused for everyone (deny by default; a test checks every VMService method is listed).
 */
export const METHOD_PERMISSIONS: Record<string, Permission | 'public' | 'authenticated'> = {
  // The guest operations': their spec's permission.
  ...Object.fromEntries(
    CONNECT_SPECS.map((spec) => [
      `${VMService.typeName}/${VMService.method[spec.connect!.method].name}`,
      spec.permission,
    ]),
  ),
  [`${VMService.typeName}/ListVMs`]: 'vm.read',
  [`${VMService.typeName}/GetVM`]: 'vm.read',
  // The VM's project (GetVMTelemetry) or the caller's projects (GetFleetSummary), by the service.
  [`${VMService.typeName}/GetVMTelemetry`]: 'vm.read',
  [`${VMService.typeName}/GetFleetSummary`]: 'vm.read',
  [`${VMService.typeName}/StartExecution`]: 'guest.exec',
  // Reading an execution: guest.exec or audit.read on its project, checked by the service.
  [`${VMService.typeName}/GetExecution`]: 'authenticated',
  [`${VMService.typeName}/StreamExecutionOutput`]: 'authenticated',
  [`${VMService.typeName}/StopExecution`]: 'guest.exec',
  // The schema is not a secret: grpcurl-style clients list and describe without a key.
  ...Object.fromEntries(
    REFLECTION_SERVICES.map((s) => [`${s}/ServerReflectionInfo`, 'public' as const]),
  ),
};

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The caller a handler runs for (set by the interceptor below). */
export function callerOf(ctx: HandlerContext): Caller {
  const principal = ctx.values.get(PRINCIPAL);
  const origin = ctx.values.get(ORIGIN);
  if (!principal || !origin) {
    throw new AuthException(AuthErrorCode.UNAUTHENTICATED, 'not authenticated');
  }
  return { principal, requestId: origin.requestId, sourceIp: origin.sourceIp };
}

/** The principal of a handler's caller. */
export function principalOf(ctx: HandlerContext): Principal {
  return callerOf(ctx).principal;
}

/**
 * Authentication and the method-level permission check for Connect and gRPC: the same
 * AuthService as REST's passport strategy (Authorization: Bearer <API key or JWT>, as HTTP
 * header or gRPC metadata), the same audit of failures and denials.
 */
@Injectable()
export class ConnectAuth {
  constructor(
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(AUTH_AUDIT_HOOK) private readonly hook: AuthAuditHook,
  ) {}

  /** Per request: a server-minted request id and the peer's address. */
  contextValues(req: { ip?: string; socket?: { remoteAddress?: string } }): ContextValues {
    const values = createContextValues();
    values.set(ORIGIN, {
      requestId: randomUUID(),
      // Express's req.ip (honours LQ_TRUST_PROXY) on the HTTP app; the peer on the gRPC port.
      sourceIp: req.ip ?? req.socket?.remoteAddress ?? '',
      route: '',
    });
    return values;
  }

  readonly interceptor: Interceptor = (next) => async (req) => {
    const route = `${req.service.typeName}/${req.method.name}`;
    const message = req.stream ? undefined : (req.message as { vmId?: unknown });
    const origin = {
      ...(req.contextValues.get(ORIGIN) ?? { requestId: randomUUID(), sourceIp: '' }),
      route,
      vmId: vmIdOf(message?.vmId),
    };
    req.contextValues.set(ORIGIN, origin);
    const permission = METHOD_PERMISSIONS[route];
    if (permission === 'public') {
      return next(req);
    }
    if (!permission) {
      throw new AuthException(
        AuthErrorCode.PERMISSION_DENIED,
        `${route} declares no permission, so it is refused (deny by default)`,
      );
    }
    const header = req.header.get('authorization') ?? '';
    const token = BEARER.exec(header)?.[1];
    let principal: Principal;
    try {
      principal = await this.auth.authenticate(token);
    } catch (err) {
      if (err instanceof AuthException && err.code === AuthErrorCode.UNAUTHENTICATED) {
        await this.hook.authFailed(origin, attemptedAuthMethod(header), err.message);
      }
      throw err;
    }
    if (permission !== 'authenticated' && !holdsAnywhere(principal, permission)) {
      await this.hook.denied(origin, principal, permission, 'no binding grants it');
      throw AuthException.denied(permission, 'on any project');
    }
    req.contextValues.set(PRINCIPAL, principal);
    const res = await next(req);
    res.header.set('x-request-id', origin.requestId);
    return res;
  };
}
