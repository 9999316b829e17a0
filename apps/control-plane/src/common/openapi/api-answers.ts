import { applyDecorators } from '@nestjs/common';
import { ApiResponse } from '@nestjs/swagger';
import type { SchemaObject } from '@nestjs/swagger';
import type { ApiSchemaName } from './api-schemas.gen.js';

/** The statuses a REST route may fail with; each answers the one ErrorBody. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 429 | 500 | 502 | 503 | 504;

/** What each error status means here (HTTP_STATUS_OF_KIND maps error kinds to them). */
export const ERROR_STATUS_TEXT: Record<ErrorStatus, string> = {
  400: 'Invalid request: the message names the field or value',
  401: 'No valid API key or access token',
  403: 'The caller lacks the permission (named in `permission`) on the VM’s project',
  404: 'What the path names does not exist, or the caller may not see it',
  409: 'Conflicts with the current state (e.g. the VM’s agent is not connected)',
  413: 'The body (or a size the request asks for) is larger than the configured maximum',
  429: 'Too many attempts: retry after Retry-After seconds',
  500: 'Internal error: logged under the answer’s correlationId, never described',
  502: 'The guest agent or node refused or failed (its code in `agentCode`)',
  503: 'A store the request needs (database, NATS, a node) is unavailable: nothing was run',
  504: 'The guest agent or node did not answer in time',
};

/** A guest operation: bad input, unknown VM, agent away, agent failure, store down, timeout. */
export const GUEST_OPERATION_ERRORS = [400, 404, 409, 413, 502, 503, 504] as const;

export const ERROR_BODY_REF = { $ref: '#/components/schemas/ErrorBody' } as const;

/**
 * What a success answers: a schema of @lq/api by name, content by media type (streams, files,
 * text), or null for no body.
 */
export type SuccessBody = ApiSchemaName | Record<string, ApiSchemaName | SchemaObject> | null;

const ref = (name: ApiSchemaName) => ({ $ref: `#/components/schemas/${name}` });

/**
 * The OpenAPI answers of a route: its success status and body, and the errors it can answer
 * besides those every route of its kind can (the document adds 401/403/503 to authenticated
 * routes and 400/413 to those with a body or query: openapi-document.ts).
 */
export function ApiAnswers(
  status: number,
  body: SuccessBody,
  errors: readonly ErrorStatus[] = [],
  description = 'OK',
): MethodDecorator {
  const success =
    body === null
      ? ApiResponse({ status, description })
      : typeof body === 'string'
        ? ApiResponse({ status, description, schema: ref(body) })
        : ApiResponse({
            status,
            description,
            content: Object.fromEntries(
              Object.entries(body).map(([type, schema]) => [
                type,
                { schema: typeof schema === 'string' ? ref(schema) : schema },
              ]),
            ),
          });
  return applyDecorators(
    success,
    ...[...new Set(errors)].map((e) =>
      ApiResponse({
        status: e,
        description: ERROR_STATUS_TEXT[e],
        // Named: a stream's route produces text/event-stream, its errors are still JSON.
        content: { 'application/json': { schema: ERROR_BODY_REF } },
      }),
    ),
  );
}

/** Server-Sent Events (each event's data is JSON of the schemas named in the description). */
export const EVENT_STREAM: Record<string, SchemaObject> = {
  'text/event-stream': { type: 'string' },
};
