import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplication } from '@nestjs/common';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import {
  DocumentBuilder,
  SwaggerModule,
  type OpenAPIObject,
  type OperationObject,
  type ResponseObject,
} from '@nestjs/swagger';
import { IS_PUBLIC } from '@lq/auth';
import { CONTROLLERS } from './app.module.js';
import {
  ERROR_BODY_REF,
  ERROR_STATUS_TEXT,
  type ErrorStatus,
} from './common/openapi/api-answers.js';
import { API_SCHEMAS } from './common/openapi/api-schemas.gen.js';

/** Where the document is served (JSON at `${DOCS_PATH}-json`, a browsable page at DOCS_PATH). */
export const DOCS_PATH = 'api/docs';

/** The version of the package this control plane was built from (the root package.json's). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'limiquantix' && pkg.version) {
        return pkg.version;
      }
    }
    const up = dirname(dir);
    if (up === dir) {
      throw new Error('cannot find the limiquantix package.json above the control plane');
    }
    dir = up;
  }
}

const HTTP_METHODS: Partial<Record<RequestMethod, string>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.PATCH]: 'patch',
  [RequestMethod.DELETE]: 'delete',
};

/** `/api/vms/{id}` of `api/vms` + `:id`, as the document spells paths. */
function documentPath(...parts: string[]): string {
  const joined = parts
    .flatMap((p) => p.split('/'))
    .filter((p) => p !== '')
    .map((p) => (p.startsWith(':') ? `{${p.slice(1)}}` : p))
    .join('/');
  return `/${joined}`;
}

/** Public routes (no sign-in) by "method path" of the document. */
function publicRoutes(): Set<string> {
  const out = new Set<string>();
  for (const cls of CONTROLLERS) {
    const base = String(Reflect.getMetadata(PATH_METADATA, cls) ?? '');
    const proto = cls.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (typeof handler !== 'function' || !Reflect.hasMetadata(PATH_METADATA, handler)) {
        continue;
      }
      const method = HTTP_METHODS[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
      const isPublic =
        Reflect.getMetadata(IS_PUBLIC, handler) === true ||
        Reflect.getMetadata(IS_PUBLIC, cls) === true;
      if (method && isPublic) {
        out.add(
          `${method} ${documentPath(base, String(Reflect.getMetadata(PATH_METADATA, handler)))}`,
        );
      }
    }
  }
  return out;
}

function addError(op: OperationObject, status: ErrorStatus): void {
  const key = String(status);
  if (!op.responses[key]) {
    const answer: ResponseObject = {
      description: ERROR_STATUS_TEXT[status],
      content: { 'application/json': { schema: ERROR_BODY_REF } },
    };
    op.responses[key] = answer;
  }
}

/**
 * The OpenAPI document of the REST API: each route's answers come from its @ApiAnswers (the
 * schemas are @lq/api's types, api-schemas.gen.ts); the errors every route of a kind can answer
 * are added here from the same metadata the guard reads: an authenticated route can answer
 * 401, 403 and 503 (the key store is away), a route with a body or query 400, a JSON body 413,
 * and every route 500.
 */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('LimiQuantix control plane')
    .setDescription(
      'Guest operations and inventory of the VMs of a KVM/QEMU cluster. Every failure answers ' +
        'the one ErrorBody; snake_case fields, every field present (null when unknown).',
    )
    .setVersion(packageVersion())
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      description: 'API key (lq_…) or access token',
    })
    .build();
  const doc = SwaggerModule.createDocument(app, config, {
    operationIdFactory: (controllerKey: string, methodKey: string) =>
      `${controllerKey.replace(/Controller$/, '')}_${methodKey}`,
  });
  doc.components = {
    ...doc.components,
    schemas: { ...(API_SCHEMAS as Record<string, object>), ...doc.components?.schemas },
  };
  const open = publicRoutes();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.values(HTTP_METHODS)) {
      const op = (item as Record<string, OperationObject | undefined>)[method];
      if (!op) {
        continue;
      }
      if (open.has(`${method} ${path}`)) {
        delete op.security;
      } else {
        op.security = [{ bearer: [] }];
        addError(op, 401);
        addError(op, 403);
        addError(op, 503);
      }
      if (op.requestBody || op.parameters?.some((p: object) => 'in' in p && p.in === 'query')) {
        addError(op, 400);
      }
      addError(op, 500);
      const body = op.requestBody && 'content' in op.requestBody ? op.requestBody.content : {};
      if (body['application/json']) {
        addError(op, 413);
      }
    }
  }
  return doc;
}
