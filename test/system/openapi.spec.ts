// Issue 21, acceptance 4: the API document people generate clients from. A real control plane
// (its tsc build, a real PostgreSQL and nats-server) serves /api/docs-json; the document must
// validate as OpenAPI, give every route a response schema for its success status and the one
// ErrorBody for its errors, carry the package's version, and a client generated from it with
// openapi-typescript must type-check against the answers lqctl and the console read.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { adminFetch, startControlPlaneProcess } from '../support/control-plane-process.js';
import type { RunningControlPlane } from '../support/control-plane-process.js';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const run = promisify(execFile);

interface Operation {
  operationId?: string;
  security?: unknown[];
  requestBody?: { content: Record<string, { schema?: unknown }> };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
type Document = {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const ERROR_REF = '#/components/schemas/ErrorBody';
const HEALTH_REF = '#/components/schemas/HealthView';

describe('the OpenAPI document (GET /api/docs-json of a real control plane)', () => {
  let nats: RunningNats;
  let db: TestDatabase;
  let cp: RunningControlPlane;
  let doc: Document;
  let work: string;

  function operations(): Array<[string, Operation]> {
    return Object.entries(doc.paths).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((m): [string, Operation] => [`${m} ${path}`, item[m]!]),
    );
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-openapi-'));
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_openapi')]);
    cp = await startControlPlaneProcess({ databaseUrl: db.url, natsUrl: nats.url });
    const res = await fetch(`${cp.url}/api/docs-json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Document;
  });

  afterAll(async () => {
    await cp?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should validate as OpenAPI, give TypeScript types, and carry the package version', async () => {
    writeFileSync(join(work, 'openapi.json'), JSON.stringify(doc));
    const tools = await run(process.execPath, [
      resolve('test/support/openapi-tools.mjs'),
      join(work, 'openapi.json'),
      join(work, 'api.d.ts'),
    ]).catch((err: Error & { stderr?: string }) => ({ stderr: err.stderr ?? err.message }));
    expect(tools.stderr).toBe('');
    const pkg = JSON.parse(readFileSync(resolve('package.json'), 'utf8')) as { version: string };
    expect(doc.info.version).toBe(pkg.version);
  });

  it('should document every route the control plane serves', () => {
    // A route the permission walk knows (route-permissions.spec.ts) and the document not.
    expect(operations().length).toBeGreaterThan(60);
    for (const path of [
      'get /api/vms',
      'post /api/vms/{id}/execute',
      'put /api/vms/{id}/files',
      'get /api/executions',
      'post /api/runs',
      'get /api/audit/events',
    ]) {
      expect(operations().map(([k]) => k)).toContain(path);
    }
  });

  it('should give every route a success status with a schema and the ErrorBody for its errors', () => {
    const problems: string[] = [];
    for (const [route, op] of operations()) {
      const statuses = Object.keys(op.responses);
      const success = statuses.filter((s) => /^2\d\d$/.test(s));
      if (success.length !== 1) {
        problems.push(`${route}: success statuses ${JSON.stringify(success)}, want one`);
      }
      for (const s of success) {
        const content = op.responses[s]!.content;
        if (s !== '204' && !content) {
          problems.push(`${route}: ${s} has no content`);
        }
        for (const [type, media] of Object.entries(content ?? {})) {
          if (!media.schema) {
            problems.push(`${route}: ${s} ${type} has no schema`);
          }
        }
      }
      const errors = statuses.filter((s) => /^[45]\d\d$/.test(s));
      if (errors.length === 0) {
        problems.push(`${route}: no error responses`);
      }
      for (const s of errors) {
        const schema = op.responses[s]!.content?.['application/json']?.schema as
          { $ref?: string } | undefined;
        // /health answers its report with 503 too (which part is down).
        const want = route === 'get /health' && s === '503' ? HEALTH_REF : ERROR_REF;
        if (schema?.$ref !== want) {
          problems.push(`${route}: ${s} does not answer the ErrorBody`);
        }
      }
      if (route.includes('{') && !statuses.includes('404')) {
        problems.push(`${route}: names something by path but has no 404`);
      }
      if (op.security && !['401', '403'].every((s) => statuses.includes(s))) {
        problems.push(`${route}: authenticated but no 401/403`);
      }
      if (op.requestBody) {
        for (const [type, media] of Object.entries(op.requestBody.content)) {
          if (!media.schema) {
            problems.push(`${route}: request body ${type} has no schema`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('should take request bodies with the fields of @lq/api’s body types', () => {
    const fields = (name: string) =>
      Object.keys((doc.components.schemas[name] as { properties?: object }).properties ?? {})
        .sort()
        .join(' ');
    for (const [dto, body] of [
      ['ExecuteDto', 'ExecuteBody'],
      ['CreateRunDto', 'RunBody'],
      ['ShutdownDto', 'ShutdownBody'],
      ['QuiesceDto', 'QuiesceBody'],
      ['FileMkdirDto', 'FileMkdirBody'],
      ['FileRenameDto', 'FileRenameBody'],
      ['AgentUpdateDto', 'AgentUpdateBody'],
      ['AgentRolloutDto', 'AgentRolloutBody'],
    ]) {
      expect([dto, fields(dto!)]).toEqual([dto, fields(body!)]);
    }
  });

  it('should describe the file upload as a binary body', () => {
    const upload = doc.paths['/api/vms/{id}/files']!.put!;
    expect(upload.requestBody?.content['application/octet-stream']?.schema).toEqual({
      type: 'string',
      format: 'binary',
    });
  });

  it('should type-check a client written against the generated types', async () => {
    writeFileSync(
      join(work, 'client.ts'),
      `import type { components, paths } from './api.js';

type Json<P extends keyof paths, M extends keyof paths[P], S extends number> =
  paths[P][M] extends { responses: Record<S, { content: { 'application/json': infer T } }> } ? T : never;

type Vm = components['schemas']['VmView'];
type ErrorBody = Json<'/api/vms/{id}', 'get', 404>;
type ExecuteBody = NonNullable<paths['/api/vms/{id}/execute']['post']['requestBody']>['content']['application/json'];

export async function execute(base: string, vm: Vm, body: ExecuteBody): Promise<number | null> {
  const res = await fetch(\`\${base}/api/vms/\${vm.id}/execute\`, { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) {
    const e = (await res.json()) as ErrorBody;
    throw new Error(\`\${e.code}: \${e.message} (\${e.correlationId})\`);
  }
  const result = (await res.json()) as Json<'/api/vms/{id}/execute', 'post', 200>;
  const out: string = result.stdout;
  return out.length >= 0 ? result.exit_code : null;
}

export function labels(vm: Vm): string[] {
  const agent: string = vm.agent_state;
  return [agent, ...Object.entries(vm.labels).map(([k, v]) => \`\${k}=\${v}\`)];
}

export function page(p: Json<'/api/executions', 'get', 200>): Array<string | null> {
  return p.executions.map((x) => x.exit_code === null ? x.refusal : x.status);
}

export function runs(p: Json<'/api/runs', 'get', 200>): number[] {
  return p.runs.map((r) => r.vm_count);
}

export const body: ExecuteBody = { command: 'id', timeout_seconds: 30 };
`,
    );
    writeFileSync(
      join(work, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023', 'DOM'],
          types: [],
        },
        files: ['client.ts'],
      }),
    );
    const tsc = resolve('node_modules/.bin/tsc');
    const result = await run(tsc, ['-p', join(work, 'tsconfig.json')], { cwd: work }).catch(
      (err: { stdout?: string; stderr?: string }) => err,
    );
    expect('stdout' in result ? `${result.stdout}${result.stderr}` : '').toBe('');
  });

  it.each([
    ['a string for a number', { command: 'id', timeout_seconds: '30' }, 'timeout_seconds'],
    ['a number below the minimum', { command: 'id', timeout_seconds: 0 }, 'timeout_seconds'],
    ['a number for a string', { command: 5 }, 'command'],
    ['a string for a list', { argv: 'id' }, 'argv'],
    ['a field the API does not have', { command: 'id', timeout: 30 }, 'timeout'],
  ])('should name the field once, with one message, for %s', async (_, json, field) => {
    const res = await adminFetch(`${cp.url}/api/vms/vm-x/executions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(json),
    });
    const body = (await res.json()) as { code: string; message: string };
    expect([res.status, body.code]).toEqual([400, 'INVALID_REQUEST']);
    expect([body.message, body.message.match(new RegExp(`\\b${field}\\b`, 'g'))]).toEqual([
      body.message,
      [field],
    ]);
    expect(body.message).not.toContain(';');
  });
});
