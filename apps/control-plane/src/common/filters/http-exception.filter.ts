import { randomUUID } from 'node:crypto';
import {
  Catch,
  HttpException,
  HttpStatus,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { AuditErrorCode, AuditException } from '@lq/audit';
import { AuthErrorCode, AuthException } from '@lq/auth';
import { ACCESS_STATUS_OF, AccessException } from '../../access/access.exception.js';
import {
  VmGuestErrorCode,
  VmGuestException,
  callerFaultOf,
  type CallerFault,
} from '../../guest-ops/vm-guest.exception.js';

/** VmGuestException codes as HTTP statuses (PROTOCOL.md §9 lists the node-side codes). */
export const HTTP_STATUS_OF: Record<VmGuestErrorCode, number> = {
  [VmGuestErrorCode.INVALID_REQUEST]: HttpStatus.BAD_REQUEST,
  [VmGuestErrorCode.VM_NOT_FOUND]: HttpStatus.NOT_FOUND,
  [VmGuestErrorCode.AGENT_NOT_CONNECTED]: HttpStatus.CONFLICT,
  [VmGuestErrorCode.AGENT_ERROR]: HttpStatus.BAD_GATEWAY,
  [VmGuestErrorCode.AGENT_TIMEOUT]: HttpStatus.GATEWAY_TIMEOUT,
  [VmGuestErrorCode.NODE_TIMEOUT]: HttpStatus.GATEWAY_TIMEOUT,
  [VmGuestErrorCode.NODE_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [VmGuestErrorCode.STORE_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [VmGuestErrorCode.NOT_FOUND]: HttpStatus.NOT_FOUND,
  [VmGuestErrorCode.INTERNAL]: HttpStatus.INTERNAL_SERVER_ERROR,
};

export const AUTH_STATUS_OF: Record<AuthErrorCode, number> = {
  [AuthErrorCode.UNAUTHENTICATED]: HttpStatus.UNAUTHORIZED,
  [AuthErrorCode.PERMISSION_DENIED]: HttpStatus.FORBIDDEN,
  [AuthErrorCode.AUTH_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [AuthErrorCode.RATE_LIMITED]: HttpStatus.TOO_MANY_REQUESTS,
};

export const AUDIT_STATUS_OF: Record<AuditErrorCode, number> = {
  [AuditErrorCode.AUDIT_UNAVAILABLE]: HttpStatus.SERVICE_UNAVAILABLE,
  [AuditErrorCode.INVALID_QUERY]: HttpStatus.BAD_REQUEST,
};

const CALLER_FAULT_STATUS: Record<CallerFault, number> = {
  invalid: HttpStatus.BAD_REQUEST,
  forbidden: HttpStatus.FORBIDDEN,
  not_found: HttpStatus.NOT_FOUND,
  too_large: HttpStatus.PAYLOAD_TOO_LARGE,
  busy: HttpStatus.TOO_MANY_REQUESTS,
  conflict: HttpStatus.CONFLICT,
};

export function httpStatusOf(e: VmGuestException): number {
  const fault = callerFaultOf(e);
  return fault ? CALLER_FAULT_STATUS[fault] : HTTP_STATUS_OF[e.code];
}

/**
 * One JSON error shape for every REST failure: { statusCode, code, message, correlationId }
 * (plus `permission` on a 403, `agentCode` on an agent's refusal).
 * Internals are logged under the correlation id, never sent.
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly log = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<Response>();
    const req = ctx.getRequest<Request>();
    const correlationId = (req.headers['x-correlation-id'] as string | undefined) ?? randomUUID();
    let status: number = HttpStatus.INTERNAL_SERVER_ERROR;
    let code = 'INTERNAL';
    let message = 'internal error';
    let agentCode: string | undefined;
    let permission: string | undefined;
    if (exception instanceof AuthException) {
      status = AUTH_STATUS_OF[exception.code];
      code = exception.code;
      message = exception.message;
      permission = exception.permission;
      if (exception.code === AuthErrorCode.UNAUTHENTICATED) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="limiquantix"');
      }
      if (exception.retryAfterSeconds !== undefined) {
        res.setHeader('Retry-After', String(exception.retryAfterSeconds));
      }
      if (exception.code === AuthErrorCode.AUTH_UNAVAILABLE) {
        this.log.warn(`${correlationId} ${req.method} ${req.url}: ${exception.message}`);
      }
    } else if (exception instanceof AuditException) {
      status = AUDIT_STATUS_OF[exception.code];
      code = exception.code;
      message = exception.message;
      if (exception.code === AuditErrorCode.AUDIT_UNAVAILABLE) {
        this.log.warn(`${correlationId} ${req.method} ${req.url}: ${exception.message}`);
      }
    } else if (exception instanceof AccessException) {
      status = ACCESS_STATUS_OF[exception.code];
      code = exception.code;
      message = exception.message;
    } else if (exception instanceof VmGuestException) {
      status = httpStatusOf(exception);
      code = exception.code;
      message = exception.message;
      agentCode = exception.agentCode;
      if (exception.code === VmGuestErrorCode.INTERNAL) {
        this.log.error(`${correlationId} ${req.method} ${req.url}: ${exception.message}`);
        message = 'internal error';
      }
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      const m =
        typeof body === 'object' && body !== null ? (body as { message?: unknown }).message : body;
      message = Array.isArray(m) ? m.join('; ') : typeof m === 'string' ? m : exception.message;
      code = status === 400 ? 'INVALID_REQUEST' : (HttpStatus[status] ?? 'ERROR');
    } else {
      this.log.error(
        `${correlationId} ${req.method} ${req.url}: ${(exception as Error)?.stack ?? String(exception)}`,
      );
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res
      .status(status)
      .json({ statusCode: status, code, agentCode, permission, message, correlationId });
  }
}
