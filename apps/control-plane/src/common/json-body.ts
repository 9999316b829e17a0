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

/** Bodies up to this size, in UTF-8 and with no content coding, are read without body-parser. */
const SMALL_BODY_MAX_BYTES = 16 * 1024;
// JSON's whitespace: space, tab, line feed, carriage return (as body-parser has it).
const FIRST_NON_WHITESPACE = /^[ \t\n\r]*([^ \t\n\r]|$)/;

/**
 * The length of a body read here, or undefined for body-parser: a declared length within the
 * bounds, no content coding and no charset but UTF-8 (body-parser's defaults for what it reads
 * otherwise: inflating, other UTF charsets).
 */
function smallUtf8Body(req: Request, limitBytes: number): number | undefined {
  const declared = req.headers['content-length'];
  if (
    declared === undefined ||
    req.headers['transfer-encoding'] !== undefined ||
    !/^\d{1,5}$/.test(declared) ||
    Number(declared) > Math.min(limitBytes, SMALL_BODY_MAX_BYTES)
  ) {
    return undefined;
  }
  const coding = req.headers['content-encoding'];
  if (coding !== undefined && coding.toLowerCase() !== 'identity') {
    return undefined;
  }
  const type = req.headers['content-type'];
  const params = type === undefined ? '' : type.slice(type.indexOf(';') + 1 || type.length);
  if (params.trim() !== '' && !/^\s*charset="?utf-8"?\s*$/i.test(params)) {
    return undefined;
  }
  return Number(declared);
}

/**
 * JSON.parse as body-parser's strict JSON parser applies it (an empty body is `{}`, only an
 * object or an array at the top), with its error messages: the REST API's 400s read the same
 * whichever reads the body.
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0) {
    return {};
  }
  const first = FIRST_NON_WHITESPACE.exec(text)?.[1] || undefined;
  if (first !== '{' && first !== '[') {
    // body-parser's message: JSON.parse's on the text from that character on, masked.
    const index = text.indexOf(first as string);
    const partial = index === -1 ? '' : text.substring(0, index) + '#'.repeat(text.length - index);
    try {
      JSON.parse(partial);
    } catch (e) {
      throw new SyntaxError(
        (e as Error).message.replace(/#+/g, (p) => text.substring(index, index + p.length)),
        { cause: e },
      );
    }
    throw new SyntaxError('strict violation');
  }
  return JSON.parse(text) as unknown;
}

/**
 * Reads a small UTF-8 body and parses it as body-parser would: most API calls send a few bytes
 * (`{}` for a ping), and body-parser's stream machinery cost more than the rest of the parse.
 */
function readSmallBody(req: Request, res: Response, next: NextFunction, length: number): void {
  if (!('body' in req)) {
    (req as { body?: unknown }).body = undefined;
  }
  if (req.readableEnded) {
    next();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    chunks.push(chunk);
  };
  const done = () => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
  };
  const onError = () => {
    done();
    refuse(req, res, 400, 'the body cannot be read: request aborted');
  };
  const onEnd = () => {
    done();
    if (size !== length) {
      refuse(req, res, 400, 'the body cannot be read: request size did not match content length');
      return;
    }
    let text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) {
      text = text.slice(1); // as iconv-lite decodes it for body-parser
    }
    try {
      (req as { body?: unknown }).body = parseJsonBody(text);
    } catch (e) {
      refuse(req, res, 400, `the body is not valid JSON: ${(e as Error).message}`);
      return;
    }
    next();
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
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
    const small = smallUtf8Body(req, limitBytes);
    if (small !== undefined) {
      readSmallBody(req, res, next, small);
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
