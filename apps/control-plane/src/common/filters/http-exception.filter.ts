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
import type { ErrorBody } from '@lq/api';
import type { ErrorKind } from '../errors/domain.exception.js';
import { reportError } from '../errors/error-kind.js';

/** Every kind of failure as an HTTP status: the one table REST answers from. */
export const HTTP_STATUS_OF_KIND: Record<ErrorKind, number> = {
  invalid: HttpStatus.BAD_REQUEST,
  unauthenticated: HttpStatus.UNAUTHORIZED,
  forbidden: HttpStatus.FORBIDDEN,
  not_found: HttpStatus.NOT_FOUND,
  conflict: HttpStatus.CONFLICT,
  too_large: HttpStatus.PAYLOAD_TOO_LARGE,
  rate_limited: HttpStatus.TOO_MANY_REQUESTS,
  unavailable: HttpStatus.SERVICE_UNAVAILABLE,
  timeout: HttpStatus.GATEWAY_TIMEOUT,
  bad_gateway: HttpStatus.BAD_GATEWAY,
  internal: HttpStatus.INTERNAL_SERVER_ERROR,
};

/**
 * One JSON error shape for every REST failure: { statusCode, code, message, correlationId }
 * (plus `permission` on a 403, `agentCode` on an agent's refusal). Internals are logged under
 * the correlation id, never sent.
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly log = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const res = ctx.getResponse<Response>();
    const req = ctx.getRequest<Request>();
    const correlationId = (req.headers['x-correlation-id'] as string | undefined) ?? randomUUID();
    let status: number;
    let code: string;
    let message: string;
    let details: Record<string, string> = {};
    if (exception instanceof HttpException) {
      // Nest's own: validation (400), unknown routes (404), body too large (413).
      status = exception.getStatus();
      const body = exception.getResponse();
      const m =
        typeof body === 'object' && body !== null ? (body as { message?: unknown }).message : body;
      message = Array.isArray(m) ? m.join('; ') : typeof m === 'string' ? m : exception.message;
      code = status === 400 ? 'INVALID_REQUEST' : (HttpStatus[status] ?? 'ERROR');
    } else {
      const e = reportError(exception);
      status = HTTP_STATUS_OF_KIND[e.kind];
      code = e.code;
      message = e.message;
      details = e.details;
      if (e.kind === 'unauthenticated') {
        res.setHeader('WWW-Authenticate', 'Bearer realm="limiquantix"');
      }
      if (e.retryAfterSeconds !== undefined) {
        res.setHeader('Retry-After', String(e.retryAfterSeconds));
      }
      if (e.kind === 'internal') {
        this.log.error(
          `${correlationId} ${req.method} ${req.url}: ${(exception as Error)?.stack ?? String(exception)}`,
        );
        code = 'INTERNAL';
        message = 'internal error';
      } else if (e.kind === 'unavailable') {
        this.log.warn(`${correlationId} ${req.method} ${req.url}: ${e.message}`);
      }
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (!req.complete) {
      // Answered before the request's body was all read (a 413 mid-upload, a refusal before
      // it): the connection ends with the answer. Kept open, it would wait for the rest of a
      // body nobody reads, and a client's next request on it would hang (keep-alive, 65 s).
      res.setHeader('Connection', 'close');
    }
    // `details` holds `permission` or `agentCode` (ErrorBody's optional fields).
    const body: ErrorBody = { statusCode: status, code, ...details, message, correlationId };
    res.status(status).json(body);
  }
}
