// The telemetry history end to end in one process: the control plane as `npm start` builds it
// (guards, validation, migrations) over a real PostgreSQL and nats-server; node daemons are
// stood in for by publishing their heartbeats and telemetry on NATS.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AgentState, NodeHeartbeatSchema, VmTelemetrySchema, subjects } from '@lq/proto';
import type { FleetSummaryView, TelemetrySeriesView } from '@lq/api';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';
import { startControlPlane, type RunningControlPlane } from '../../src/app.js';
import { parseControlPlaneEnv } from '../../src/config/env.schema.js';
import { TelemetryPruner } from '../../src/telemetry/telemetry-pruner.js';
import { TelemetryRecorder } from '../../src/telemetry/telemetry-recorder.js';

const ADMIN = 'lq_telemetr_0123456789abcdefghijklmnopqrstuvwxyzAB';
const MIN = 60_000;

interface Reply {
  status: number;
  body: any;
}

function heartbeat(nodeId: string, vmIds: string[]) {
  return create(NodeHeartbeatSchema, {
    nodeId,
    hostname: `${nodeId}.host`,
    daemonVersion: '0.1.0',
    timestamp: timestampFromDate(new Date()),
    vms: vmIds.map((vmId) => ({
      vmId,
      state: AgentState.READY,
      agentVersion: vmId.endsWith('2') ? '0.9.0' : '1.0.0',
      info: { hostname: `${vmId}.guest`, os: { id: 'debian' } },
    })),
  });
}

function report(
  nodeId: string,
  vmId: string,
  at: number,
  r: { cpu: number; memUsed: number; diskUsed: number; rx: number; tx?: number },
) {
  return create(VmTelemetrySchema, {
    nodeId,
    vmId,
    timestamp: timestampFromDate(new Date(at)),
    report: {
      cpuPercent: r.cpu,
      cpuCount: 2,
      load1: 0.5,
      memory: { totalBytes: 4000n, usedBytes: BigInt(r.memUsed), availableBytes: 1n },
      disks: [
        {
          mountPoint: '/',
          device: '/dev/vda1',
          fsType: 'ext4',
          totalBytes: 1000n,
          usedBytes: BigInt(r.diskUsed),
          availableBytes: BigInt(1000 - r.diskUsed),
        },
      ],
      network: [
        { name: 'lo', rxBytes: 999_999n, txBytes: 999_999n },
        { name: 'eth0', rxBytes: BigInt(r.rx), txBytes: BigInt(r.tx ?? 0) },
      ],
    },
  });
}

describe('telemetry history, fleet summary and guest gauges', () => {
  let nats: RunningNats;
  let db: TestDatabase;
  let cp: RunningControlPlane;
  let pub: NatsConnection;
  let spool: string;
  const tokens: Record<string, string> = { admin: ADMIN };
  // Steps of the reports: the minute before last, so every report lands in a finished step.
  const base = Math.floor(Date.now() / MIN) * MIN - 2 * MIN;

  async function call(who: string, path: string, init: RequestInit = {}): Promise<Reply> {
    const res = await fetch(`${cp.httpUrl}${path}`, {
      ...init,
      headers: {
        Authorization: `Bearer ${tokens[who]}`,
        'content-type': 'application/json',
        ...(init.headers as Record<string, string> | undefined),
      },
    });
    const text = await res.text();
    return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
  }

  const post = (path: string, body: unknown) =>
    call('admin', path, { method: 'POST', body: JSON.stringify(body) });

  async function userWith(name: string, bindings: Array<{ role: string; project?: string }>) {
    expect((await post('/api/users', { username: name })).status).toBe(201);
    for (const b of bindings) {
      expect((await post('/api/role-bindings', { user: name, ...b })).status).toBe(201);
    }
    const key = await post(`/api/users/${name}/api-keys`, { name: 'test' });
    expect(key.status).toBe(201);
    tokens[name] = key.body.token as string;
  }

  async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
    const until = Date.now() + 20_000;
    let v = await probe();
    while (!ok(v) && Date.now() < until) {
      await sleep(100);
      v = await probe();
    }
    return v;
  }

  const send = (nodeId: string, vmId: string, at: number, r: Parameters<typeof report>[3]) =>
    pub.publish(
      subjects.telemetry(nodeId, vmId),
      toBinary(VmTelemetrySchema, report(nodeId, vmId, at, r)),
    );

  /**
   * Two reports per VM in the current step, whenever the test runs: the summary counts VMs that
   * reported within the last three steps, which a slow machine could leave behind otherwise.
   */
  async function reportNow(): Promise<void> {
    let now = Date.now();
    const step = Math.floor(now / MIN) * MIN;
    if (now - step < 2000) {
      await sleep(2000 - (now - step));
      now = Date.now();
    }
    const seconds = (now - step) / 1000;
    for (const [vm, cpu, memUsed, diskUsed, rate] of [
      ['vm-a1', 85, 3000, 950, 1000],
      ['vm-a2', 5, 1000, 100, 10],
      ['vm-b1', 50, 2000, 500, 100],
    ] as const) {
      send('node-a', vm, step, { cpu, memUsed, diskUsed, rx: 1_000_000 });
      send('node-a', vm, now, {
        cpu,
        memUsed,
        diskUsed,
        rx: Math.round(1_000_000 + rate * seconds),
      });
    }
    await pub.flush();
    await eventually(
      () => call('admin', '/api/fleet/summary'),
      (r) => r.body?.reporting === 3 && r.body?.top?.network?.length === 3,
    );
  }

  const series = (who: string, vm: string, query = '') =>
    call(who, `/api/vms/${vm}/telemetry${query}`);

  beforeAll(async () => {
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_telemetry')]);
    spool = mkdtempSync(join(tmpdir(), 'lq-telemetry-spool-'));
    const config = parseControlPlaneEnv({
      DATABASE_URL: db.url,
      NATS_URL: nats.url,
      LQ_ADMIN_TOKEN: ADMIN,
      LQ_HTTP_HOST: '127.0.0.1',
      LQ_HTTP_PORT: '0',
      LQ_GRPC_HOST: '127.0.0.1',
      LQ_GRPC_PORT: '0',
      LQ_AUDIT_SPOOL_DIR: spool,
      LQ_AUDIT_CHECKPOINT_JETSTREAM: 'off',
      LQ_TELEMETRY_FLUSH_MS: '200',
      LQ_FLEET_SUMMARY_TOP_MAX: '20',
      LQ_LOG_LEVEL: 'error',
    });
    cp = await startControlPlane(config);
    pub = await connect({ servers: nats.url });
    pub.publish(
      subjects.heartbeat('node-a'),
      toBinary(NodeHeartbeatSchema, heartbeat('node-a', ['vm-a1', 'vm-a2', 'vm-b1'])),
    );
    await eventually(
      () => call('admin', '/api/vms'),
      (r) => r.body?.vms?.length === 3,
    );
    expect((await post('/api/projects', { id: 'blue' })).status).toBe(201);
    const moved = await call('admin', '/api/vms/vm-b1/project', {
      method: 'PUT',
      body: JSON.stringify({ project: 'blue' }),
    });
    expect(moved.status).toBe(200);
    await userWith('blue-op', [{ role: 'operator', project: 'blue' }]);
    await userWith('nobody', []);

    // Six reports a minute for two minutes; vm-a1 busy with a nearly full disk, vm-a2 idle.
    for (let i = 0; i < 12; i += 1) {
      const at = base + i * 10_000;
      send('node-a', 'vm-a1', at, {
        cpu: 80 + (i % 2) * 10,
        memUsed: 3000,
        diskUsed: 950,
        rx: i * 10_000,
      });
      send('node-a', 'vm-a2', at, { cpu: 5, memUsed: 1000, diskUsed: 100, rx: i * 100 });
      send('node-a', 'vm-b1', at, { cpu: 50, memUsed: 2000, diskUsed: 500, rx: i * 1000 });
    }
    // A node that does not own the VM: its reports are not history.
    send('node-x', 'vm-a1', base + 5000, { cpu: 0, memUsed: 0, diskUsed: 0, rx: 0 });
    // vm-a1's newest report is stored as its latest (disks for full_disks, the gauges).
    send('node-a', 'vm-a1', Date.now(), { cpu: 85, memUsed: 3000, diskUsed: 950, rx: 130_000 });
    await pub.flush();
    await eventually(
      () => series('admin', 'vm-a1'),
      (r) => (r.body as TelemetrySeriesView).points?.reduce((n, p) => n + p.samples, 0) === 13,
    );
  }, 120_000);

  afterAll(async () => {
    await pub?.close();
    await cp?.close();
    await nats?.stop();
    await db?.drop();
    rmSync(spool, { recursive: true, force: true });
  });

  it('should answer a VM’s 1-minute points with averages and network rates when reports arrived', async () => {
    const r = await series('admin', 'vm-a1');
    expect(r.status).toBe(200);
    const s = r.body as TelemetrySeriesView;
    expect([s.vm_id, s.resolution, s.step_seconds]).toEqual(['vm-a1', 'fine', 60]);
    const first = s.points[0]!;
    expect(first).toMatchObject({
      t: new Date(base).toISOString(),
      samples: 6,
      cpu_percent: 85,
      cpu_max_percent: 90,
      memory_used_bytes: 3000,
      memory_total_bytes: 4000,
      memory_percent: 75,
      disk_used_bytes: 950,
      disk_total_bytes: 1000,
      disk_max_percent: 95,
      // 10,000 bytes every 10 s on eth0; loopback left out.
      net_rx_bytes_per_second: 1000,
      net_tx_bytes_per_second: 0,
    });
    expect(s.points[1]).toMatchObject({ t: new Date(base + MIN).toISOString(), samples: 6 });
  });

  it('should choose the 15-minute points when the window is longer than the fine retention', async () => {
    const to = new Date(Date.now() + MIN).toISOString();
    const from = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const r = await series('admin', 'vm-a1', `?from=${from}&to=${to}`);
    expect(r.status).toBe(200);
    const s = r.body as TelemetrySeriesView;
    expect([s.resolution, s.step_seconds]).toEqual(['coarse', 900]);
    expect(s.points.reduce((n, p) => n + p.samples, 0)).toBe(13);
  });

  it.each([
    ['?from=yesterday', /from must be an ISO 8601 time/],
    ['?to=2026-13-45T00:00:00Z', /to must be an ISO 8601 time/],
    ['?from=2026-12-05T10:00:00Z&to=2026-12-05T09:00:00Z', /from .* must be before to/],
    ['?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z', /longer than 30 days/],
  ])('should refuse %s with 400 naming the problem', async (query, message) => {
    const r = await series('admin', 'vm-a1', query);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(message);
  });

  it('should refuse a caller without vm.read on the VM’s project, and one with no role at all', async () => {
    const other = await series('blue-op', 'vm-a1');
    expect(other.status).toBe(403);
    expect(other.body.permission).toBe('vm.read');
    expect((await series('nobody', 'vm-b1')).status).toBe(403);
    expect((await call('nobody', '/api/fleet/summary')).status).toBe(403);
    expect((await series('blue-op', 'vm-b1')).status).toBe(200);
    expect((await series('admin', 'vm-nope')).status).toBe(404);
  });

  it('should summarise the fleet: states, versions, top VMs and full disks', async () => {
    await reportNow();
    const r = await call('admin', '/api/fleet/summary');
    expect(r.status).toBe(200);
    const s = r.body as FleetSummaryView;
    expect(s.vms).toBe(3);
    expect(s.by_agent_state).toEqual([{ key: 'ready', count: 3 }]);
    expect(s.by_agent_version).toEqual([
      { key: '1.0.0', count: 2 },
      { key: '0.9.0', count: 1 },
    ]);
    expect(s.reporting).toBe(3);
    expect(s.top.cpu.map((v) => v.id)).toEqual(['vm-a1', 'vm-b1', 'vm-a2']);
    expect(s.top.memory.map((v) => v.id)).toEqual(['vm-a1', 'vm-b1', 'vm-a2']);
    expect(s.top.disk.map((v) => v.id)).toEqual(['vm-a1', 'vm-b1', 'vm-a2']);
    expect(s.top.network.map((v) => v.id)).toEqual(['vm-a1', 'vm-b1', 'vm-a2']);
    expect(s.disk_threshold_percent).toBe(90);
    expect(s.full_disk_vms).toBe(1);
    expect(s.full_disks).toEqual([
      expect.objectContaining({ vm_id: 'vm-a1', mount_point: '/', used_percent: 95 }),
    ]);
    const lower = (await call('admin', '/api/fleet/summary?disk_percent=40&top=1')).body;
    expect([lower.full_disk_vms, lower.full_disks.length, lower.top.cpu.length]).toEqual([2, 1, 1]);
  });

  it('should summarise only the VMs of the caller’s projects', async () => {
    await reportNow();
    const s = (await call('blue-op', '/api/fleet/summary')).body as FleetSummaryView;
    expect(s.vms).toBe(1);
    expect(s.top.cpu.map((v) => v.id)).toEqual(['vm-b1']);
    expect(s.full_disks).toEqual([]);
  });

  it.each([
    ['?top=0', /top must be at least 1/],
    ['?top=500', /top must be an integer from 1 to 20/],
    ['?disk_percent=150', /disk_percent must be from 0 to 100/],
    ['?disk_percent=full', /disk_percent must be a number/],
  ])('should refuse the summary query %s with 400', async (query, message) => {
    const r = await call('admin', `/api/fleet/summary${query}`);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(message);
  });

  it('should serve the same reads as VMService methods over Connect, behind the same checks', async () => {
    const rpc = (who: string, method: string, body: unknown) =>
      call(who, `/limiquantix.compute.v1.VMService/${method}`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
    const series = await rpc('admin', 'GetVMTelemetry', { vmId: 'vm-a1' });
    expect(series.status).toBe(200);
    expect(series.body).toMatchObject({ vmId: 'vm-a1', resolution: 'fine', stepSeconds: 60 });
    expect(series.body.points[0]).toMatchObject({
      t: new Date(base).toISOString().replace('.000Z', 'Z'),
      samples: 6,
      cpuPercent: 85,
      memoryUsedBytes: '3000',
      netRxBytesPerSecond: 1000,
    });
    const other = await rpc('blue-op', 'GetVMTelemetry', { vmId: 'vm-a1' });
    expect([other.status, other.body.code]).toEqual([403, 'permission_denied']);
    const bad = await rpc('admin', 'GetVMTelemetry', {
      vmId: 'vm-a1',
      from: '2026-12-05T10:00:00Z',
      to: '2026-12-05T09:00:00Z',
    });
    expect([bad.status, bad.body.code]).toEqual([400, 'invalid_argument']);
    expect(bad.body.message).toMatch(/must be before to/);

    const summary = await rpc('blue-op', 'GetFleetSummary', { top: 5 });
    expect(summary.status).toBe(200);
    expect(summary.body.vms).toBe(1);
    expect((summary.body.topCpu as Array<{ id: string }>).map((v) => v.id)).toEqual(['vm-b1']);
    expect((await rpc('nobody', 'GetFleetSummary', {})).status).toBe(403);
  });

  it('should export guest gauges per current VM on /metrics, and none for a VM gone', async () => {
    const metrics = async () => (await fetch(`${cp.httpUrl}/metrics`)).text();
    const text = await metrics();
    expect(text).toContain(
      'lq_vm_guest_cpu_percent{vm="vm-a1",node="node-a",project="default"} 85',
    );
    expect(text).toContain(
      'lq_vm_guest_disk_max_used_percent{vm="vm-a1",node="node-a",project="default"} 95',
    );
    expect(text).toContain(
      'lq_vm_guest_memory_used_bytes{vm="vm-a1",node="node-a",project="default"} 3000',
    );
    pub.publish(
      subjects.heartbeat('node-a'),
      toBinary(NodeHeartbeatSchema, heartbeat('node-a', ['vm-a2', 'vm-b1'])),
    );
    const after = await eventually(metrics, (t) => !t.includes('vm="vm-a1"'));
    expect(after).not.toContain('vm="vm-a1"');
  });

  it('should prune points past their retention and keep the coarse ones', async () => {
    const recorder = cp.app.get(TelemetryRecorder);
    const old = Date.now() - 26 * 3600_000;
    expect(
      recorder.record(report('node-a', 'vm-a2', old, { cpu: 1, memUsed: 1, diskUsed: 1, rx: 0 })),
    ).toBe(true);
    await recorder.flush();
    const window = `?from=${new Date(old - 3600_000).toISOString()}&to=${new Date(old + 3600_000).toISOString()}`;
    // Two hours more than a day ago: served from the coarse points.
    const before = (await series('admin', 'vm-a2', window)).body as TelemetrySeriesView;
    expect(before.points.map((p) => p.samples)).toEqual([1]);
    expect(await cp.app.get(TelemetryPruner).prune()).toBe(1);
    const after = (await series('admin', 'vm-a2', window)).body as TelemetrySeriesView;
    expect(after.points.map((p) => p.samples)).toEqual([1]);
    expect(await cp.app.get(TelemetryPruner).prune()).toBe(0);
  });
});
