// Transport test for VMService: Connect JSON on the Nest HTTP app and gRPC (+ reflection) on the
// HTTP/2 port, over real sockets. The audited path and InventoryService are test doubles here: the
// system test drives the whole path through NATS, a node daemon and an agent.
import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Body, Controller, Get, Module, Post, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import * as grpc from '@grpc/grpc-js';
import {
  create,
  createFileRegistry,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageShape,
} from '@bufbuild/protobuf';
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';
import {
  ExecuteResponseSchema,
  PingAgentRequestSchema,
  PingAgentResponseSchema,
  ShutdownMode,
  ShutdownResponseSchema,
  VMSchema,
  VMService,
  reflectionV1,
} from '@lq/proto';
import { mountConnect } from '../../src/connect/connect.mount.js';
import { GrpcServer } from '../../src/connect/grpc.server.js';
import { VmServiceRoutes } from '../../src/connect/vm-service.routes.js';
import { VmGuestErrorCode, VmGuestException } from '../../src/guest-ops/vm-guest.exception.js';
import type { Caller } from '../../src/common/caller.js';
import type { GuestOperationSpec } from '../../src/guest-ops/guest-operation.js';
import { GuestOperationRunner } from '../../src/guest-ops/guest-operation.runner.js';
import { CONTROL_PLANE_CONFIG, parseControlPlaneEnv } from '../../src/config/env.schema.js';
import { ConnectAuth } from '../../src/connect/connect-auth.js';
import { ExecutionsService } from '../../src/executions/executions.service.js';
import { TelemetryHistoryService } from '../../src/telemetry/telemetry-history.service.js';
import { VmReadService } from '../../src/inventory/vm-read.service.js';
import { AUTH_AUDIT_HOOK, AuthException, AuthService, type Principal } from '@lq/auth';
import { InventoryService } from '../../src/inventory/inventory.service.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';

/** Failures keyed by VM id, as VmGuestService reports them. */
function failureFor(vmId: string): Error | undefined {
  switch (vmId) {
    case 'vm-missing':
      return new VmGuestException(VmGuestErrorCode.VM_NOT_FOUND, 'VM vm-missing is unknown');
    case 'vm-offline':
      return new VmGuestException(VmGuestErrorCode.AGENT_NOT_CONNECTED, 'agent not connected');
    case 'vm-slow':
      return new VmGuestException(VmGuestErrorCode.AGENT_TIMEOUT, 'agent did not answer');
    case 'vm-denied':
      return new VmGuestException(
        VmGuestErrorCode.AGENT_ERROR,
        'path not allowed',
        'PATH_NOT_ALLOWED',
      );
    case 'vm-crash':
      return new Error('secret database password in /etc/lq');
    default:
      return undefined;
  }
}

const calls: Array<{ op: string; vmId: string; caller: string; input?: unknown }> = [];

/** Bearer tokens of the test double of AuthService. */
const PRINCIPALS: Record<string, Principal> = {
  'tok-alice': {
    userId: 'u-alice',
    username: 'alice',
    authMethod: 'api_key',
    bindings: [{ role: 'operator', projectId: null, restrictions: {} }],
  },
  'tok-viewer': {
    userId: 'u-viewer',
    username: 'victor',
    authMethod: 'jwt',
    bindings: [{ role: 'viewer', projectId: null, restrictions: {} }],
  },
};
const auth = {
  authenticate: async (token: string | undefined) => {
    const p = token ? PRINCIPALS[token] : undefined;
    if (!p) {
      throw AuthException.unauthenticated(token ? 'unknown API key' : 'missing bearer token');
    }
    return p;
  },
};
const authEvents: string[] = [];
const hook = {
  authFailed: async (_o: unknown, method: string, reason: string) => {
    authEvents.push(`failed ${method}: ${reason}`);
  },
  denied: async (_o: unknown, p: Principal, permission: string) => {
    authEvents.push(`denied ${p.username} ${permission}`);
  },
};

const guest = {
  ping: jest.fn(async (vmId: string, timeoutSeconds: number | undefined, caller: Caller) => {
    calls.push({ op: 'ping', vmId, caller: caller.principal.username, input: { timeoutSeconds } });
    const failure = failureFor(vmId);
    if (failure) {
      throw failure;
    }
    return { vmId, agentVersion: '1.2.3', uptimeSeconds: 42.5, latencyMs: 1.25 };
  }),
  execute: jest.fn(async (vmId: string, input: unknown, caller: Caller) => {
    calls.push({ op: 'execute', vmId, caller: caller.principal.username, input });
    const failure = failureFor(vmId);
    if (failure) {
      throw failure;
    }
    return create(ExecuteResponseSchema, {
      exitCode: 0,
      stdout: new TextEncoder().encode('Linux vm-1 6.1.0 x86_64 GNU/Linux\n'),
      stderr: new Uint8Array([0xff, 0x41]),
      durationMs: 12,
    });
  }),
  shutdown: jest.fn(async (vmId: string, mode: ShutdownMode, _delay: number, caller: Caller) => {
    calls.push({ op: 'shutdown', vmId, caller: caller.principal.username, input: { mode } });
    return create(ShutdownResponseSchema, { mode });
  }),
};

/** The audited path, doubled: each operation's spec goes to its double above. */
const runner = {
  run: (
    spec: GuestOperationSpec<unknown, unknown>,
    caller: Caller,
    vmId: string,
    input: unknown,
  ) => {
    const i = input as { timeoutSeconds?: number; mode: ShutdownMode; delaySeconds: number };
    switch (spec.name) {
      case 'ping':
        return guest.ping(vmId, i.timeoutSeconds, caller);
      case 'execute':
        return guest.execute(vmId, input, caller);
      case 'shutdown':
        return guest.shutdown(vmId, i.mode, i.delaySeconds, caller);
      default:
        throw new Error(`no test double for ${spec.name}`);
    }
  },
};

const vm1 = create(VMSchema, { id: 'vm-1', nodeId: 'node-1', agentState: 'ready' });
const inventory = {
  listVms: jest.fn(async () => [vm1]),
  getVm: jest.fn(async (id: string) => (id === 'vm-1' ? vm1 : undefined)),
};

/** A REST route beside Connect: other paths reach Nest, and its JSON bodies still parse. */
@Controller('api')
class EchoController {
  @Get('ping')
  ping() {
    return { ok: true };
  }

  @Post('echo')
  echo(@Body() body: unknown) {
    return { body };
  }
}

@Module({
  controllers: [EchoController],
  providers: [
    VmServiceRoutes,
    GrpcServer,
    { provide: GuestOperationRunner, useValue: runner },
    { provide: InventoryService, useValue: inventory },
    {
      provide: MetricsService,
      useValue: { measure: <T>(_op: string, work: () => Promise<T>) => work() },
    },
    { provide: AuthService, useValue: auth },
    { provide: AUTH_AUDIT_HOOK, useValue: hook },
    {
      provide: VmReadService,
      useValue: {
        getVm: async (_c: Caller, id: string) => {
          const vm = await inventory.getVm(id);
          if (!vm) {
            throw new VmGuestException(
              VmGuestErrorCode.VM_NOT_FOUND,
              `VM ${id} is not in the inventory`,
            );
          }
          return vm;
        },
      },
    },
    ConnectAuth,
    { provide: ExecutionsService, useValue: {} },
    // The history's methods are tried in telemetry-history.spec.ts, over a real database.
    { provide: TelemetryHistoryService, useValue: {} },
    // The defaults, as a control plane given only a database URL has them.
    {
      provide: CONTROL_PLANE_CONFIG,
      useValue: parseControlPlaneEnv({ DATABASE_URL: 'postgres://unused@127.0.0.1/unused' }),
    },
  ],
})
class ConnectTestModule {}

describe('VMService over Connect and gRPC', () => {
  let app: INestApplication;
  let url: string;
  let grpcPort: number;
  let client: grpc.Client;

  const post = async (method: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${url}/limiquantix.compute.v1.VMService/${method}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: 'Bearer tok-alice',
        ...headers,
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  const codec = <T extends DescMessage>(schema: T) => ({
    serialize: (m: MessageShape<T>) => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer) => fromBinary(schema, b),
  });

  const unary = <I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    request: MessageShape<I>,
  ) =>
    new Promise<MessageShape<O>>((resolve, reject) => {
      const i = codec(input);
      const o = codec(output);
      const metadata = new grpc.Metadata();
      metadata.set('authorization', 'Bearer tok-alice');
      client.makeUnaryRequest(path, i.serialize, o.deserialize, request, metadata, (err, res) =>
        err || !res ? reject(err ?? new Error('no response')) : resolve(res),
      );
    });

  /**
   * One ServerReflectionInfo stream: sends each request, collects one response per request. v1
   * and v1alpha messages are identical on the wire, so both are written and read as v1.
   */
  const reflect = async (
    version: 'v1' | 'v1alpha',
    requests: Array<reflectionV1.ServerReflectionRequest['messageRequest']>,
  ): Promise<reflectionV1.ServerReflectionResponse[]> => {
    const req = codec(reflectionV1.ServerReflectionRequestSchema);
    const res = codec(reflectionV1.ServerReflectionResponseSchema);
    const call = client.makeBidiStreamRequest(
      `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
      req.serialize,
      res.deserialize,
    );
    const out: reflectionV1.ServerReflectionResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: reflectionV1.ServerReflectionResponse) => out.push(m));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    for (const messageRequest of requests) {
      call.write(create(reflectionV1.ServerReflectionRequestSchema, { messageRequest }));
    }
    call.end();
    await done;
    return out;
  };

  beforeAll(async () => {
    app = await NestFactory.create<NestExpressApplication>(ConnectTestModule, {
      logger: false,
      bodyParser: false,
    });
    // The order app.ts uses: Connect before the JSON body parser.
    mountConnect(app);
    (app as NestExpressApplication).useBodyParser('json', { limit: '4mb' });
    await app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${((app.getHttpServer() as Server).address() as AddressInfo).port}`;
    grpcPort = await app.get(GrpcServer).start('127.0.0.1', 0);
    client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await app?.get(GrpcServer).stop();
    await app?.close();
  });

  it('should answer the seed PingAgent JSON body with proto3 JSON', async () => {
    const res = await post('PingAgent', { vmId: 'vm-1', timeoutSeconds: 5 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      vmId: 'vm-1',
      agentVersion: '1.2.3',
      uptimeSeconds: 42.5,
      latencyMs: 1.25,
    });
    expect(calls.at(-1)).toEqual({
      op: 'ping',
      vmId: 'vm-1',
      caller: 'alice',
      input: { timeoutSeconds: 5 },
    });
  });

  it('should answer the seed ExecuteScript JSON body verbatim with text and bytes', async () => {
    const res = await fetch(`${url}/limiquantix.compute.v1.VMService/ExecuteScript`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer tok-alice' },
      body: '{"vmId":"vm-1","command":"uname -a","timeoutSeconds":30}',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      vmId: 'vm-1',
      exitCode: 0,
      timedOut: false,
      stdout: 'Linux vm-1 6.1.0 x86_64 GNU/Linux\n',
      stderr: '\ufffdA',
      stdoutTruncated: false,
      durationMs: 12,
      stdoutBytes: Buffer.from('Linux vm-1 6.1.0 x86_64 GNU/Linux\n').toString('base64'),
      stderrBytes: Buffer.from([0xff, 0x41]).toString('base64'),
    });
    const call = calls.at(-1);
    expect(call?.caller).toBe('alice');
    expect(call?.input).toMatchObject({ command: 'uname -a', timeoutSeconds: 30, argv: [] });
  });

  it('should default GuestShutdown mode to poweroff when unspecified', async () => {
    const res = await post('GuestShutdown', { vmId: 'vm-1' });
    expect(res.status).toBe(200);
    expect(res.body.mode).toBe('SHUTDOWN_MODE_POWEROFF');
    expect(calls.at(-1)?.input).toEqual({ mode: ShutdownMode.POWEROFF });
  });

  it('should list VMs and answer NOT_FOUND for an unknown one', async () => {
    const list = await post('ListVMs', {});
    expect(list.status).toBe(200);
    expect(list.body.vms).toEqual([
      expect.objectContaining({ id: 'vm-1', nodeId: 'node-1', agentState: 'ready' }),
    ]);
    const found = await post('GetVM', { vmId: 'vm-1' });
    expect(found.body.vm).toEqual(expect.objectContaining({ id: 'vm-1' }));
    const missing = await post('GetVM', { vmId: 'vm-9' });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('not_found');
  });

  it.each([
    ['vm-missing', 404, 'not_found'],
    ['vm-offline', 400, 'failed_precondition'],
    ['vm-slow', 504, 'deadline_exceeded'],
    ['vm-denied', 403, 'permission_denied'],
  ])('should map the failure of %s to HTTP %s %s', async (vmId, status, code) => {
    const res = await post('ExecuteScript', { vmId, command: 'true' });
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
    expect(typeof res.body.message).toBe('string');
  });

  it('should answer 401 without a token or with an unknown one, and audit both', async () => {
    authEvents.length = 0;
    const none = await post('PingAgent', { vmId: 'vm-1' }, { Authorization: '' });
    expect(none.status).toBe(401);
    expect(none.body.code).toBe('unauthenticated');
    const bad = await post('PingAgent', { vmId: 'vm-1' }, { Authorization: 'Bearer lq_nope' });
    expect(bad.status).toBe(401);
    expect(authEvents).toEqual([
      'failed none: missing bearer token',
      'failed api_key: unknown API key',
    ]);
  });

  it('should answer 403 naming the permission when a viewer executes, and audit it', async () => {
    authEvents.length = 0;
    const before = calls.length;
    const res = await post(
      'ExecuteScript',
      { vmId: 'vm-1', command: 'id' },
      { Authorization: 'Bearer tok-viewer' },
    );
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('permission_denied');
    expect(res.body.message).toContain('guest.exec');
    expect(calls.length).toBe(before);
    expect(authEvents).toEqual(['denied victor guest.exec']);
    const allowed = await post('GetVM', { vmId: 'vm-1' }, { Authorization: 'Bearer tok-viewer' });
    expect(allowed.status).toBe(200);
  });

  it('should refuse gRPC calls without metadata credentials', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(
        '/limiquantix.compute.v1.VMService/PingAgent',
        (m: MessageShape<typeof PingAgentRequestSchema>) =>
          Buffer.from(toBinary(PingAgentRequestSchema, m)),
        (b: Buffer) => fromBinary(PingAgentResponseSchema, b),
        create(PingAgentRequestSchema, { vmId: 'vm-1' }),
        (e) => resolve(e as grpc.ServiceError),
      );
    });
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('should hide the message and stack of an unexpected error', async () => {
    const res = await post('PingAgent', { vmId: 'vm-crash' });
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ code: 'internal', message: 'internal error' });
  });

  it('should reject unknown JSON fields and leave other paths to Nest', async () => {
    const bad = await post('PingAgent', { vmId: 'vm-1', nope: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('invalid_argument');
    expect((await fetch(`${url}/api/ping`)).status).toBe(200);
    const echo = await fetch(`${url}/api/echo`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"a":1}',
    });
    expect(await echo.json()).toEqual({ body: { a: 1 } });
    const unknown = await fetch(`${url}/limiquantix.compute.v1.VMService/Nope`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(unknown.status).toBe(404);
  });

  it('should reject a Connect body over the size bound', async () => {
    const res = await post('ExecuteScript', { vmId: 'vm-1', command: 'x'.repeat(5 * 1024 * 1024) });
    expect(res.status).toBe(429);
    expect(res.body.code).toBe('resource_exhausted');
  });

  it('should call PingAgent over gRPC with the same handler', async () => {
    const res = await unary(
      '/limiquantix.compute.v1.VMService/PingAgent',
      PingAgentRequestSchema,
      PingAgentResponseSchema,
      create(PingAgentRequestSchema, { vmId: 'vm-1' }),
    );
    expect(res).toMatchObject({ vmId: 'vm-1', agentVersion: '1.2.3', uptimeSeconds: 42.5 });
    await expect(
      unary(
        '/limiquantix.compute.v1.VMService/PingAgent',
        PingAgentRequestSchema,
        PingAgentResponseSchema,
        create(PingAgentRequestSchema, { vmId: 'vm-slow' }),
      ),
    ).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
  });

  it('should list services and describe VMService over gRPC reflection', async () => {
    const [list, file, missing] = await reflect('v1', [
      { case: 'listServices', value: '' },
      { case: 'fileContainingSymbol', value: 'limiquantix.compute.v1.VMService' },
      { case: 'fileContainingSymbol', value: 'limiquantix.compute.v1.Nope' },
    ]);
    expect(
      list?.messageResponse.case === 'listServicesResponse' &&
        list.messageResponse.value.service.map((s) => s.name),
    ).toEqual([
      'limiquantix.compute.v1.VMService',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
    ]);
    if (file?.messageResponse.case !== 'fileDescriptorResponse') {
      throw new Error(`unexpected ${file?.messageResponse.case}`);
    }
    const protos = file.messageResponse.value.fileDescriptorProto.map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
    expect(protos[0]?.name).toBe('limiquantix/compute/v1/vm_service.proto');
    expect(protos[0]?.service[0]?.name).toBe('VMService');
    expect(protos[0]?.service[0]?.method.map((m) => m.name)).toContain('ExecuteScript');
    expect(protos.map((p) => p.name)).toEqual(
      expect.arrayContaining([
        'google/protobuf/timestamp.proto',
        'limiquantix/agent/v1/agent.proto',
      ]),
    );
    // The answer is complete: every import, transitively, resolves from it.
    const byName = new Map(protos.map((p) => [p.name, p]));
    const ordered: FileDescriptorProto[] = [];
    const visit = (name: string): void => {
      const p = byName.get(name);
      if (!p) {
        throw new Error(`${name} missing from the reflection answer`);
      }
      if (!ordered.includes(p)) {
        p.dependency.forEach(visit);
        ordered.push(p);
      }
    };
    visit('limiquantix/compute/v1/vm_service.proto');
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
    expect(registry.getService('limiquantix.compute.v1.VMService')?.methods).toHaveLength(
      VMService.methods.length,
    );
    expect(missing?.messageResponse).toMatchObject({
      case: 'errorResponse',
      value: { errorCode: grpc.status.NOT_FOUND },
    });
  });

  it('should answer v1alpha reflection and file_by_filename', async () => {
    const [list, file] = await reflect('v1alpha', [
      { case: 'listServices', value: '*' },
      { case: 'fileByFilename', value: 'grpc/reflection/v1/reflection.proto' },
    ]);
    expect(list?.messageResponse.case).toBe('listServicesResponse');
    expect(file?.messageResponse.case).toBe('fileDescriptorResponse');
    const bytes =
      file?.messageResponse.case === 'fileDescriptorResponse'
        ? file.messageResponse.value.fileDescriptorProto[0]
        : undefined;
    expect(fromBinary(FileDescriptorProtoSchema, bytes ?? new Uint8Array()).package).toBe(
      'grpc.reflection.v1',
    );
  });
});
