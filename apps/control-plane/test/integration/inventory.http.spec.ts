import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Global, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AgentEventSchema,
  AgentState,
  NodeHeartbeatSchema,
  VmTelemetrySchema,
  subjects,
} from '@lq/proto';
import { DataSource } from 'typeorm';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';
import { HttpExceptionFilter } from '../../src/common/filters/http-exception.filter.js';
import { CONTROL_PLANE_CONFIG, parseControlPlaneEnv } from '../../src/config/env.schema.js';
import { AuthService } from '@lq/auth';
import type { NodeView, TelemetryEventView, VmListView, VmView } from '@lq/api';

const ADMIN_TOKEN = 'lq_inventry_0123456789abcdefghijklmnopqrstuvwxyzAB';
const AUTH = { Authorization: `Bearer ${ADMIN_TOKEN}` };
import { createDataSource } from '../../src/database/data-source.js';
import { HealthModule } from '../../src/health/health.module.js';
import { InventoryController } from '../../src/inventory/inventory.controller.js';
import { InventoryModule } from '../../src/inventory/inventory.module.js';
import { InventoryRepository } from '../../src/inventory/inventory.repository.js';
import { InventorySubscriber } from '../../src/inventory/inventory.subscriber.js';
import { MetricsModule } from '../../src/metrics/metrics.module.js';
import { MetricsService } from '../../src/metrics/metrics.service.js';
import { NatsService } from '../../src/nats/nats.service.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 5000,
): Promise<T> {
  const until = Date.now() + ms;
  let v = await probe();
  while (!ok(v) && Date.now() < until) {
    await sleep(50);
    v = await probe();
  }
  return v;
}

function heartbeat(nodeId: string, vmIds: string[]) {
  return create(NodeHeartbeatSchema, {
    nodeId,
    hostname: `${nodeId}.host`,
    daemonVersion: '0.1.0',
    timestamp: timestampFromDate(new Date()),
    fileChunkMaxBytes: 65_536,
    vms: vmIds.map((vmId) => ({
      vmId,
      state: AgentState.READY,
      agentVersion: '1.0.0',
      info: { hostname: `${vmId}.guest`, os: { id: 'debian' } },
    })),
  });
}

describe('inventory over NATS and HTTP', () => {
  let nats: RunningNats;
  let db: TestDatabase;
  let ds: DataSource;
  let app: INestApplication;
  let url: string;
  let pub: NatsConnection;

  const getJson = async (path: string) => {
    const res = await fetch(`${url}${path}`, { headers: AUTH });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const vmIds = async () =>
    ((await getJson('/api/vms')).body as unknown as VmListView).vms.map(
      (v) => `${v.id}:${v.agent_state}`,
    );

  beforeAll(async () => {
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_test')]);
    ds = createDataSource(db.url);
    await ds.initialize();
    await ds.runMigrations({ transaction: 'each' });
    const config = parseControlPlaneEnv({
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      LQ_ADMIN_TOKEN: ADMIN_TOKEN,
    });

    // The real modules over this test's database and NATS.
    @Global()
    @Module({
      providers: [
        { provide: CONTROL_PLANE_CONFIG, useValue: config },
        { provide: DataSource, useValue: ds },
      ],
      exports: [CONTROL_PLANE_CONFIG, DataSource],
    })
    class TestInfraModule {}

    @Module({ imports: [TestInfraModule, InventoryModule, HealthModule, MetricsModule] })
    class TestModule {}

    app = await NestFactory.create(TestModule, { logger: false });
    app.useGlobalFilters(new HttpExceptionFilter());
    await app.get(AuthService).bootstrap();
    await app.get(NatsService).connect('inventory-test');
    await app.get(InventorySubscriber).start();
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
    url = url.replace('[::1]', '127.0.0.1');
    pub = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await pub?.close();
    await app?.close();
    if (ds?.isInitialized) {
      await ds.destroy();
    }
    await nats?.stop();
    await db?.drop();
  });

  it('should serve VMs and nodes when a node daemon publishes a heartbeat', async () => {
    pub.publish(
      subjects.heartbeat('node-a'),
      toBinary(NodeHeartbeatSchema, heartbeat('node-a', ['vm-2', 'vm-1'])),
    );

    expect(await eventually(vmIds, (v) => v.length === 2)).toEqual(['vm-1:ready', 'vm-2:ready']);
    const one = await getJson('/api/vms/vm-1');
    expect(one.status).toBe(200);
    // snake_case, every field present: what proto3 JSON would leave out is '' or null here.
    const expected: VmView = {
      id: 'vm-1',
      name: '',
      node_id: 'node-a',
      project_id: 'default',
      agent_state: 'ready',
      agent_version: '1.0.0',
      agent_target: '',
      agent_outdated: false,
      agent_last_update: null,
      capabilities: [],
      hostname: 'vm-1.guest',
      os: {
        name: '',
        version: '',
        id: 'debian',
        pretty_name: '',
        kernel_release: '',
        kernel_version: '',
        arch: '',
      },
      interfaces: [],
      last_seen: null,
      telemetry: null,
      telemetry_at: null,
      labels: {},
    };
    expect(one.body).toEqual(expected);
    const nodes = await getJson('/api/nodes');
    expect(nodes.body.nodes).toEqual([
      {
        id: 'node-a',
        hostname: 'node-a.host',
        daemon_version: '0.1.0',
        last_heartbeat_at: expect.any(String),
        stale: false,
        vm_count: 2,
        file_chunk_max_bytes: 65_536,
      } satisfies Record<keyof NodeView, unknown>,
    ]);
  });

  it('should answer 404 VM_NOT_FOUND when the VM is unknown', async () => {
    const res = await getJson('/api/vms/no-such-vm');
    const stream = await fetch(`${url}/api/vms/no-such-vm/telemetry/stream`, { headers: AUTH });

    expect([res.status, res.body.code]).toEqual([404, 'VM_NOT_FOUND']);
    expect(stream.status).toBe(404);
  });

  it('should drop a payload when it names another node than its subject', async () => {
    pub.publish(
      subjects.heartbeat('node-x'),
      toBinary(NodeHeartbeatSchema, heartbeat('node-a', [])),
    );
    pub.publish(
      subjects.event('node-a', 'vm-1', 'disconnected'),
      toBinary(
        AgentEventSchema,
        create(AgentEventSchema, { nodeId: 'node-b', vmId: 'vm-1', kind: 'disconnected' }),
      ),
    );
    await pub.flush();
    await sleep(200);

    expect(await vmIds()).toEqual(['vm-1:ready', 'vm-2:ready']);
  });

  it('should keep following heartbeats when the database fails for a while', async () => {
    await ds.query('ALTER TABLE vms RENAME TO vms_away');
    pub.publish(
      subjects.heartbeat('node-a'),
      toBinary(NodeHeartbeatSchema, heartbeat('node-a', ['vm-1'])),
    );
    await pub.flush();
    await sleep(300);
    await ds.query('ALTER TABLE vms_away RENAME TO vms');

    pub.publish(
      subjects.heartbeat('node-a'),
      toBinary(NodeHeartbeatSchema, heartbeat('node-a', ['vm-1'])),
    );

    expect(await eventually(vmIds, (v) => v.includes('vm-2:gone'))).toEqual([
      'vm-1:ready',
      'vm-2:gone',
    ]);
  });

  it('should stream telemetry as Server-Sent Events when a client watches a VM', async () => {
    const abort = new AbortController();
    const res = await fetch(`${url}/api/vms/vm-1/telemetry/stream`, {
      signal: abort.signal,
      headers: AUTH,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const publisher = setInterval(() => {
      pub.publish(
        subjects.telemetry('node-a', 'vm-1'),
        toBinary(
          VmTelemetrySchema,
          create(VmTelemetrySchema, { nodeId: 'node-a', vmId: 'vm-1', report: { cpuPercent: 42 } }),
        ),
      );
    }, 50);
    try {
      while (!text.includes('\n\n')) {
        const { value, done } = await reader.read();
        if (done) {
          break;
        }
        text += decoder.decode(value as Uint8Array, { stream: true });
      }
    } finally {
      clearInterval(publisher);
      abort.abort();
    }

    const frame = text.slice(0, text.indexOf('\n\n'));
    expect(frame.split('\n')[0]).toBe('event: telemetry');
    const data = JSON.parse(frame.split('\n')[1]!.slice('data: '.length)) as TelemetryEventView;
    expect(data).toMatchObject({ node_id: 'node-a', vm_id: 'vm-1', report: { cpu_percent: 42 } });
  });

  it('should end open telemetry streams when the application shuts down', async () => {
    const res = await fetch(`${url}/api/vms/vm-1/telemetry/stream`, { headers: AUTH });
    const reader = res.body!.getReader();

    app.get(InventoryController).beforeApplicationShutdown();

    let done = false;
    while (!done) {
      done = (await reader.read()).done;
    }
    expect(done).toBe(true);
  });

  it('should store telemetry when the queue-group subscription receives it', async () => {
    pub.publish(
      subjects.telemetry('node-a', 'vm-1'),
      toBinary(
        VmTelemetrySchema,
        create(VmTelemetrySchema, {
          nodeId: 'node-a',
          vmId: 'vm-1',
          timestamp: timestampFromDate(new Date(Date.now() + 60_000)),
          report: { cpuCount: 8 },
        }),
      ),
    );

    const vm = await eventually(
      () => getJson('/api/vms/vm-1'),
      (r) => (r.body as unknown as VmView).telemetry?.cpu_count === 8,
    );
    expect(vm.body.telemetry).toMatchObject({ cpu_count: 8, memory: null, disks: [] });
  });

  it('should report health and metrics when the database and NATS are up', async () => {
    app.get(MetricsService).observe('ping', 'ok', 0.012);

    const health = await getJson('/health');
    const metrics = await fetch(`${url}/metrics`);
    const text = await metrics.text();

    expect(health).toEqual({ status: 200, body: { status: 'ok', database: 'ok', nats: 'ok' } });
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toMatch(/lq_guest_operations_total\{operation="ping",outcome="ok"\} 1/);
    expect(text).toMatch(
      /lq_guest_operation_duration_seconds_bucket\{le="0.025",operation="ping",outcome="ok"\} 1/,
    );
    expect(text).toMatch(/lq_inventory_vms\{agent_state="gone"\} 1/);
    expect(text).toMatch(/lq_inventory_nodes\{stale="false"\} 1/);
    expect(text).toMatch(/lq_inventory_messages_total\{kind="heartbeat",outcome="invalid"\} 1/);
    expect(text).toMatch(/lq_inventory_messages_total\{kind="heartbeat",outcome="failed"\} 1/);
    expect(text).toMatch(/process_cpu_user_seconds_total/);
  });

  it('should answer 503 naming the database when it does not answer', async () => {
    const repo = app.get(InventoryRepository);
    const ping = repo.ping.bind(repo);
    repo.ping = () => Promise.reject(new Error('down'));
    try {
      const health = await getJson('/health');

      expect(health).toEqual({
        status: 503,
        body: { status: 'unavailable', database: 'unavailable', nats: 'ok' },
      });
    } finally {
      repo.ping = ping;
    }
  });
});
