import { randomUUID } from 'node:crypto';
import { json, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { ErrorBody } from '@lq/api';

/**
 * Requests whose body is streamed to the handler unparsed: PUT /api/vms/:id/files (an upload of
 * any size, any bytes, with or without a Content-Type) and PUT
 * /api/agent/releases/:version/files/:name (a file of an agent release being imported).
 */
export function isRawBodyRoute(req: Request): boolean {
  return (
    req.method === 'PUT' &&
    (/^\/api\/vms\/[^/]+\/files\/?$/.test(req.path) ||
      /^\/api\/agent\/releases\/[^/]+\/files\/[^/]+$/.test(req.path))
  );
}

/**
 * Content types REST reads as JSON. Besides JSON itself: none at all, and what clients say
 * when nobody told them — `curl -d` sends application/x-www-form-urlencoded (the seed's curls
 * do), fetch labels a string text/plain. No REST route takes a form, so nothing is lost.
 */
function readAsJson(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType.trim() === '') {
    return true;
  }
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return (
    type === 'application/json' ||
    type.endsWith('+json') ||
    type === 'application/x-www-form-urlencoded' ||
    type === 'text/plain'
  );
}

/** As body-parser decides it (type-is's hasBody): a length, even 0, or a chunked body. */
function hasBody(req: Request): boolean {
  return (
    req.headers['transfer-encoding'] !== undefined ||
    !Number.isNaN(Number.parseInt(req.headers['content-length'] ?? '', 10))
  );
}

const CODES: Record<number, string> = {
  400: 'INVALID_REQUEST',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

function refuse(req: Request, res: Response, status: number, message: string): void {
  const body: ErrorBody = {
    statusCode: status,
    code: CODES[status] ?? 'INVALID_REQUEST',
    message,
    correlationId: (req.headers['x-correlation-id'] as string | undefined) ?? randomUUID(),
  };
  res.status(status).json(body);
}

/**
 * The JSON body parser of the REST routes, /api/… (mounted after Connect, which reads its own
 * bodies; nothing else takes a body). A body is JSON whatever its Content-Type says unless it
 * names another media type (415); one that does not parse is 400 naming the problem, in the
 * API's error shape (these errors happen before Nest's routing, so its exception filter never
 * sees them).
 */
export function jsonBodies(limitBytes: number): RequestHandler {
  const parse = json({ limit: limitBytes, type: () => true });
  return (req: Request, res: Response, next: NextFunction) => {
    if (!req.path.startsWith('/api/') || isRawBodyRoute(req) || !hasBody(req)) {
      next();
      return;
    }
    const contentType = req.headers['content-type'];
    if (!readAsJson(contentType)) {
      if (req.headers['content-length'] === '0') {
        next();
        return;
      }
      refuse(
        req,
        res,
        415,
        `a body of type ${contentType} is not read here: send JSON (Content-Type: application/json)`,
      );
      return;
    }
    parse(req, res, (err?: unknown) => {
      if (err === undefined || err === null) {
        next();
        return;
      }
      const e = err as { status?: number; type?: string; message?: string };
      if (e.type === 'entity.parse.failed') {
        refuse(req, res, 400, `the body is not valid JSON: ${e.message ?? 'parse error'}`);
      } else if (e.type === 'entity.too.large') {
        refuse(req, res, 413, `the body exceeds ${limitBytes} bytes`);
      } else if (e.status !== undefined && e.status >= 400 && e.status < 500) {
        refuse(req, res, e.status === 415 ? 415 : 400, `the body cannot be read: ${e.message}`);
      } else {
        next(err);
      }
    });
  };
}
