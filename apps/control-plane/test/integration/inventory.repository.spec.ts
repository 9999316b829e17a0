import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { create, toJson, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  AgentEventSchema,
  AgentState,
  NodeHeartbeatSchema,
  VMSchema,
  VmTelemetrySchema,
  type VmAgentStatus,
  type VmAgentStatusSchema,
} from '@lq/proto';
import type { DataSource } from 'typeorm';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';
import type { ControlPlaneConfig } from '../../src/config/env.schema.js';
import { MIGRATIONS, createDataSource } from '../../src/database/data-source.js';
import { InventoryRepository } from '../../src/inventory/inventory.repository.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => timestampFromDate(new Date(T0.getTime() + ms));

// The init form only (not a whole message), so partial inits spread into one.
type StatusInit = Exclude<MessageInitShape<typeof VmAgentStatusSchema>, VmAgentStatus>;

function readyVm(vmId: string, extra: Partial<StatusInit> = {}): StatusInit {
  return {
    vmId,
    state: AgentState.READY,
    agentVersion: '1.2.3',
    capabilities: ['ping', 'execute'],
    info: {
      agentVersion: '1.2.3',
      hostname: `${vmId}.guest`,
      os: { id: 'debian', version: '12', prettyName: 'Debian GNU/Linux 12' },
      interfaces: [{ name: 'eth0', mac: '52:54:00:00:00:01', ipv4: ['10.0.0.5/24'] }],
    },
    connectedSince: at(0),
    lastSeen: at(1000),
    ...extra,
  };
}

function heartbeat(nodeId: string, ms: number, vms: StatusInit[], extra = {}) {
  return create(NodeHeartbeatSchema, {
    nodeId,
    hostname: `${nodeId}.host`,
    daemonVersion: '0.1.0',
    startedAt: at(0),
    timestamp: at(ms),
    fileChunkMaxBytes: 1_048_576,
    vms,
    ...extra,
  });
}

describe('InventoryRepository (PostgreSQL)', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: InventoryRepository;

  beforeAll(async () => {
    db = await createTestDatabase('lq_test');
    ds = createDataSource(db.url);
    await ds.initialize();
    await ds.runMigrations({ transaction: 'each' });
    repo = new InventoryRepository(ds, { nodeStaleMs: 15_000 } as ControlPlaneConfig);
  });

  afterAll(async () => {
    if (ds?.isInitialized) {
      await ds.destroy();
    }
    await db?.drop();
  });

  beforeEach(async () => {
    await ds.query('TRUNCATE vms, nodes');
  });

  it('should insert the node and its VMs when a first heartbeat arrives', async () => {
    const result = await repo.applyHeartbeat(
      heartbeat('node-a', 5000, [readyVm('vm-2'), readyVm('vm-1')]),
    );

    expect(result).toEqual({ applied: true, refused: [], adopted: [] });
    const vms = await repo.listVms();
    expect(vms.map((v) => [v.id, v.nodeId, v.agentState])).toEqual([
      ['vm-1', 'node-a', 'ready'],
      ['vm-2', 'node-a', 'ready'],
    ]);
    const vm1 = vms[0]!;
    expect(vm1.agentVersion).toBe('1.2.3');
    expect(vm1.capabilities).toEqual(['ping', 'execute']);
    expect(vm1.hostname).toBe('vm-1.guest');
    expect(vm1.os?.prettyName).toBe('Debian GNU/Linux 12');
    expect(vm1.interfaces.map((i) => i.ipv4)).toEqual([['10.0.0.5/24']]);
    expect(vm1.lastSeen).toEqual(at(1000));
    const [node] = await repo.listNodes(T0.getTime() + 6000);
    expect(node).toEqual({
      id: 'node-a',
      hostname: 'node-a.host',
      daemonVersion: '0.1.0',
      lastHeartbeatAt: '2026-01-01T00:00:05.000Z',
      stale: false,
      vmCount: 2,
      fileChunkMaxBytes: 1_048_576,
    });
  });

  it('should update state and keep stored facts when a later heartbeat carries none', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    await repo.applyHeartbeat(
      heartbeat('node-a', 2000, [
        { vmId: 'vm-1', state: AgentState.DISCONNECTED, lastSeen: at(1500) },
      ]),
    );

    const vm = await repo.getVm('vm-1');
    expect(vm?.agentState).toBe('disconnected');
    expect(vm?.hostname).toBe('vm-1.guest');
    expect(vm?.agentVersion).toBe('1.2.3');
    expect(vm?.os?.id).toBe('debian');
    expect(vm?.lastSeen).toEqual(at(1500));
  });

  it('should rewrite only the VMs whose status changed when a later heartbeat lists them all', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1'), readyVm('vm-2')]));
    // xmin: the transaction that wrote the row's current version.
    const versions = async () =>
      Object.fromEntries(
        (
          await ds.query<Array<{ id: string; v: string }>>('SELECT id, xmin::text AS v FROM vms')
        ).map((r) => [r.id, r.v]),
      );
    const before = await versions();

    const result = await repo.applyHeartbeat(
      heartbeat('node-a', 2000, [readyVm('vm-1'), readyVm('vm-2', { lastSeen: at(1900) })]),
    );

    expect(result).toEqual({ applied: true, refused: [], adopted: [] });
    const after = await versions();
    expect(after['vm-1']).toBe(before['vm-1']);
    expect(after['vm-2']).not.toBe(before['vm-2']);
    expect((await repo.getVm('vm-2'))?.lastSeen).toEqual(at(1900));
    expect((await repo.listVms()).map((v) => v.agentState)).toEqual(['ready', 'ready']);
  });

  it('should replace facts when the agent reports new ones', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    await repo.applyHeartbeat(
      heartbeat('node-a', 2000, [
        readyVm('vm-1', {
          agentVersion: '1.3.0',
          info: { hostname: 'renamed', os: { id: 'ubuntu' }, interfaces: [] },
        }),
      ]),
    );

    const vm = await repo.getVm('vm-1');
    expect([vm?.agentVersion, vm?.hostname, vm?.os?.id, vm?.interfaces]).toEqual([
      '1.3.0',
      'renamed',
      'ubuntu',
      [],
    ]);
  });

  it('should ignore a heartbeat when a newer one of the same daemon was applied', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 2000, [readyVm('vm-1')]));

    const { applied } = await repo.applyHeartbeat(heartbeat('node-a', 1000, []));

    expect(applied).toBe(false);
    expect((await repo.getVm('vm-1'))?.agentState).toBe('ready');
    expect((await repo.listNodes())[0]?.vmCount).toBe(1);
  });

  it('should apply an older heartbeat when the daemon restarted', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 2000, [readyVm('vm-1')]));

    const { applied } = await repo.applyHeartbeat(
      heartbeat('node-a', 1000, [], { startedAt: at(900) }),
    );

    expect(applied).toBe(true);
    expect((await repo.getVm('vm-1'))?.agentState).toBe('gone');
  });

  it("should refuse another node's claim on a VM and keep it with its owner", async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1'), readyVm('vm-2')]));

    const claim = await repo.applyHeartbeat(
      heartbeat('node-b', 1000, [readyVm('vm-1', { info: { hostname: 'evil' } }), readyVm('vm-3')]),
    );

    expect(claim).toEqual({
      applied: true,
      refused: [{ vmId: 'vm-1', owner: 'node-a', projectId: 'default' }],
      adopted: [],
    });
    const vm1 = await repo.getVm('vm-1');
    expect([vm1?.nodeId, vm1?.agentState, vm1?.hostname]).toEqual([
      'node-a',
      'ready',
      'vm-1.guest',
    ]);
    expect((await repo.locate('vm-1'))?.nodeId).toBe('node-a');
    expect((await repo.locate('vm-3'))?.nodeId).toBe('node-b');
  });

  it('should keep refusing a claim when the owner is stale, as long as adoption is off', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));
    await repo.applyHeartbeat(heartbeat('node-a', 2000, []));

    const claim = await repo.applyHeartbeat(
      heartbeat('node-b', 900_000, [readyVm('vm-1')]),
      new Date(T0.getTime() + 900_000),
    );

    expect(claim.refused.map((r) => r.vmId)).toEqual(['vm-1']);
    expect((await repo.getVm('vm-1'))?.nodeId).toBe('node-a');
  });

  it('should hand a VM over when the owner has been silent for vmAdoptAfterMs, and not before', async () => {
    const adopting = new InventoryRepository(ds, {
      nodeStaleMs: 15_000,
      vmAdoptAfterMs: 60_000,
    } as ControlPlaneConfig);
    await adopting.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    const early = await adopting.applyHeartbeat(
      heartbeat('node-b', 30_000, [readyVm('vm-1')]),
      new Date(T0.getTime() + 30_000),
    );
    const late = await adopting.applyHeartbeat(
      heartbeat('node-b', 90_000, [readyVm('vm-1')]),
      new Date(T0.getTime() + 90_000),
    );

    expect(early.refused.map((r) => r.owner)).toEqual(['node-a']);
    expect(late).toEqual({
      applied: true,
      refused: [],
      adopted: [{ vmId: 'vm-1', previousNode: 'node-a', projectId: 'default' }],
    });
    expect((await adopting.getVm('vm-1'))?.nodeId).toBe('node-b');
  });

  it("should accept the new node's claim and refuse the old one's when a VM is moved", async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));
    await repo.applyHeartbeat(heartbeat('node-b', 1000, []));

    expect(await repo.moveVm('vm-1', 'node-b')).toEqual({
      previousNode: 'node-a',
      projectId: 'default',
    });
    expect((await repo.getVm('vm-1'))?.agentState).toBe('gone');
    const moved = await repo.applyHeartbeat(heartbeat('node-b', 2000, [readyVm('vm-1')]));
    const stale = await repo.applyHeartbeat(heartbeat('node-a', 2000, [readyVm('vm-1')]));

    expect(moved.refused).toEqual([]);
    expect(stale.refused).toEqual([{ vmId: 'vm-1', owner: 'node-b', projectId: 'default' }]);
    const vm = await repo.getVm('vm-1');
    expect([vm?.nodeId, vm?.agentState]).toEqual(['node-b', 'ready']);
    expect(await repo.moveVm('nope', 'node-b')).toBeUndefined();
    expect([await repo.nodeExists('node-b'), await repo.nodeExists('node-z')]).toEqual([
      true,
      false,
    ]);
  });

  it('should store the name a node reports and keep it when a later report has none', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1', { name: 'dup\u0007' })]));
    await repo.applyHeartbeat(heartbeat('node-a', 2000, [readyVm('vm-1')]));

    const [vm] = await repo.listVms();

    expect(vm?.name).toBe('dup');
    expect(toJson(VMSchema, vm!)).toMatchObject({ id: 'vm-1', name: 'dup' });
  });

  it('should mark a VM gone when its node stops listing it', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1'), readyVm('vm-2')]));

    await repo.applyHeartbeat(heartbeat('node-a', 2000, [readyVm('vm-2')]));

    expect((await repo.getVm('vm-1'))?.agentState).toBe('gone');
    expect((await repo.getVm('vm-2'))?.agentState).toBe('ready');
  });

  it('should keep a VM ready when a node that no longer owns it stops listing it', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));
    await repo.applyHeartbeat(heartbeat('node-b', 1000, []));
    await repo.moveVm('vm-1', 'node-b');
    await repo.applyHeartbeat(heartbeat('node-b', 2000, [readyVm('vm-1')]));

    await repo.applyHeartbeat(heartbeat('node-a', 2000, []));

    const vm = await repo.getVm('vm-1');
    expect([vm?.nodeId, vm?.agentState]).toEqual(['node-b', 'ready']);
  });

  it('should upsert hundreds of VMs when one heartbeat lists them', async () => {
    const many = Array.from({ length: 500 }, (_, i) => readyVm(`vm-${String(i).padStart(3, '0')}`));

    await repo.applyHeartbeat(heartbeat('node-a', 1000, many));

    const vms = await repo.listVms();
    expect(vms).toHaveLength(500);
    expect(vms[0]?.id).toBe('vm-000');
    expect(vms[499]?.id).toBe('vm-499');
  });

  it('should apply the status of an agent event when it carries one', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    await repo.applyEvent(
      create(AgentEventSchema, {
        nodeId: 'node-a',
        vmId: 'vm-1',
        kind: 'disconnected',
        timestamp: at(3000),
        status: { vmId: 'vm-1', state: AgentState.DISCONNECTED, lastSeen: at(2900) },
      }),
    );

    const vm = await repo.getVm('vm-1');
    expect([vm?.agentState, vm?.hostname, vm?.lastSeen]).toEqual([
      'disconnected',
      'vm-1.guest',
      at(2900),
    ]);
  });

  it('should refuse an event that carries a status for a VM another node owns', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    const claims = await repo.applyEvent(
      create(AgentEventSchema, {
        nodeId: 'node-b',
        vmId: 'vm-1',
        kind: 'disconnected',
        status: { vmId: 'vm-1', state: AgentState.DISCONNECTED },
      }),
    );
    await repo.applyEvent(
      create(AgentEventSchema, { nodeId: 'node-b', vmId: 'vm-1', kind: 'disconnected' }),
    );

    expect(claims.refused).toEqual([{ vmId: 'vm-1', owner: 'node-a', projectId: 'default' }]);
    const vm = await repo.getVm('vm-1');
    expect([vm?.nodeId, vm?.agentState]).toEqual(['node-a', 'ready']);
  });

  it('should insert the VM when an event names one the inventory has not seen', async () => {
    await repo.applyEvent(
      create(AgentEventSchema, {
        nodeId: 'node-a',
        vmId: 'vm-9',
        kind: 'ready',
        status: readyVm('vm-9'),
      }),
    );

    expect((await repo.locate('vm-9'))?.agentState).toBe('ready');
  });

  it('should set the state from the kind when an event carries no status', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    await repo.applyEvent(
      create(AgentEventSchema, { nodeId: 'node-a', vmId: 'vm-1', kind: 'disconnected' }),
    );

    expect((await repo.getVm('vm-1'))?.agentState).toBe('disconnected');
  });

  describe('the order of a daemon’s heartbeats and events (state_seq)', () => {
    const event = (kind: string, seq: bigint, status?: StatusInit) =>
      create(AgentEventSchema, {
        nodeId: 'node-a',
        vmId: 'vm-1',
        kind,
        timestamp: at(Number(seq)),
        stateSeq: seq,
        ...(status ? { status } : {}),
      });
    const connecting: StatusInit = { vmId: 'vm-1', state: AgentState.CONNECTING, lastSeen: at(1) };

    it('should not let a heartbeat built before a ready event undo it when applied after it', async () => {
      await repo.applyHeartbeat(heartbeat('node-a', 1000, [connecting], { stateSeq: 1000n }));
      await repo.applyEvent(event('ready', 1200n, readyVm('vm-1')));

      // Published at 1100 (before the event), applied by another replica after it.
      await repo.applyHeartbeat(heartbeat('node-a', 1100, [connecting], { stateSeq: 1100n }));

      expect((await repo.getVm('vm-1'))?.agentState).toBe('ready');
      // A later heartbeat does change it.
      await repo.applyHeartbeat(heartbeat('node-a', 1300, [connecting], { stateSeq: 1300n }));
      expect((await repo.getVm('vm-1'))?.agentState).toBe('connecting');
    });

    it('should not let an event without status undo a later state', async () => {
      await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')], { stateSeq: 1000n }));
      await repo.applyEvent(event('disconnected', 900n));
      expect((await repo.getVm('vm-1'))?.agentState).toBe('ready');
      await repo.applyEvent(event('disconnected', 1100n));
      expect((await repo.getVm('vm-1'))?.agentState).toBe('disconnected');
    });

    it('should not mark gone a VM an event named after the heartbeat was built', async () => {
      await repo.applyHeartbeat(heartbeat('node-a', 1000, [], { stateSeq: 1000n }));
      await repo.applyEvent(event('ready', 1200n, readyVm('vm-1')));

      await repo.applyHeartbeat(heartbeat('node-a', 1100, [], { stateSeq: 1100n }));

      expect((await repo.getVm('vm-1'))?.agentState).toBe('ready');
    });

    it('should order a restarted daemon’s states afresh, even with its clock behind', async () => {
      await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')], { stateSeq: 5000n }));

      await repo.applyHeartbeat(
        heartbeat('node-a', 1100, [connecting], { stateSeq: 100n, startedAt: at(1050) }),
      );

      expect((await repo.getVm('vm-1'))?.agentState).toBe('connecting');
      await repo.applyEvent(event('ready', 200n, readyVm('vm-1')));
      expect((await repo.getVm('vm-1'))?.agentState).toBe('ready');
    });

    it('should apply messages without a state_seq (daemons before 0.7.0) in any order', async () => {
      await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')], { stateSeq: 1000n }));
      await repo.applyEvent(event('disconnected', 0n));
      expect((await repo.getVm('vm-1'))?.agentState).toBe('disconnected');
    });
  });

  it('should store telemetry and refresh interfaces when the VM is known', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    const applied = await repo.applyTelemetry(
      create(VmTelemetrySchema, {
        nodeId: 'node-a',
        vmId: 'vm-1',
        timestamp: at(4000),
        report: {
          cpuPercent: 12.5,
          memory: { totalBytes: 2n ** 33n, usedBytes: 1024n },
          interfaces: [{ name: 'eth0', ipv4: ['10.0.0.9/24'] }],
        },
      }),
    );

    expect(applied).toBe(true);
    const vm = await repo.getVm('vm-1');
    expect(vm?.telemetry?.cpuPercent).toBe(12.5);
    expect(vm?.telemetry?.memory?.totalBytes).toBe(2n ** 33n);
    expect(vm?.telemetryAt).toEqual(at(4000));
    expect(vm?.interfaces.map((i) => i.ipv4)).toEqual([['10.0.0.9/24']]);
    expect(toJson(VMSchema, vm!)).toMatchObject({
      telemetry: { cpuPercent: 12.5, memory: { totalBytes: '8589934592' } },
      telemetryAt: '2026-01-01T00:00:04Z',
    });
  });

  it('should keep interfaces when a telemetry report has none', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    await repo.applyTelemetry(
      create(VmTelemetrySchema, {
        nodeId: 'node-a',
        vmId: 'vm-1',
        timestamp: at(4000),
        report: { cpuCount: 2 },
      }),
    );

    const vm = await repo.getVm('vm-1');
    expect(vm?.interfaces.map((i) => i.ipv4)).toEqual([['10.0.0.5/24']]);
    expect(vm?.telemetry?.cpuCount).toBe(2);
  });

  it('should ignore telemetry when the VM is unknown, another node sends it, or it is older', async () => {
    const report = (vmId: string, ms: number, cpuCount: number, nodeId = 'node-a') =>
      create(VmTelemetrySchema, { nodeId, vmId, timestamp: at(ms), report: { cpuCount } });
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));
    await repo.applyTelemetry(report('vm-1', 5000, 4));

    const unknown = await repo.applyTelemetry(report('vm-x', 5000, 1));
    const older = await repo.applyTelemetry(report('vm-1', 4000, 1));
    const foreign = await repo.applyTelemetry(report('vm-1', 6000, 1, 'node-b'));

    expect([unknown, older, foreign]).toEqual([false, false, false]);
    expect(await repo.getVm('vm-x')).toBeUndefined();
    expect((await repo.getVm('vm-1'))?.telemetry?.cpuCount).toBe(4);
  });

  it('should locate a VM with its node chunk size when the VM is known', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));

    expect(await repo.locate('vm-1')).toEqual({
      nodeId: 'node-a',
      projectId: 'default',
      agentState: 'ready',
      agentVersion: '1.2.3',
      agentTarget: '',
      fileChunkMaxBytes: 1_048_576,
    });
    expect(await repo.locate('nope')).toBeUndefined();
    expect(await repo.getVm('nope')).toBeUndefined();
  });

  it('should report a node stale when its heartbeat is older than nodeStaleMs', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 0, []));
    await repo.applyHeartbeat(heartbeat('node-b', 20_000, []));

    const nodes = await repo.listNodes(T0.getTime() + 20_000);

    expect(nodes.map((n) => [n.id, n.stale])).toEqual([
      ['node-a', true],
      ['node-b', false],
    ]);
  });

  it('should count VMs by agent state when asked for metrics', async () => {
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1'), readyVm('vm-2')]));
    await repo.applyHeartbeat(heartbeat('node-a', 2000, [readyVm('vm-2')]));

    expect(Object.fromEntries(await repo.countVmsByAgentState())).toEqual({ ready: 1, gone: 1 });
    await expect(repo.ping()).resolves.toBeUndefined();
  });

  it('should drop and recreate the tables when the migrations are reverted and rerun', async () => {
    const tables = `SELECT count(*)::int AS n FROM information_schema.tables
      WHERE table_schema = 'public' AND table_name IN ('vms', 'nodes', 'projects', 'users',
        'api_keys', 'refresh_tokens', 'role_bindings', 'settings', 'audit_events', 'audit_outputs',
        'executions', 'execution_output', 'runs', 'run_targets', 'telemetry_points')`;
    expect((await ds.query<Array<{ n: number }>>(tables))[0]?.n).toBe(15);
    for (let i = 0; i < MIGRATIONS.length; i++) {
      await ds.undoLastMigration({ transaction: 'each' });
    }
    expect((await ds.query<Array<{ n: number }>>(tables))[0]?.n).toBe(0);

    const applied = await ds.runMigrations({ transaction: 'each' });

    // Every migration listed in the data source, in its order.
    expect(applied.map((m) => m.name)).toEqual(MIGRATIONS.map((M) => new M().name));
    expect(applied[0]?.name).toBe('CreateInventory1764201600000');
    await repo.applyHeartbeat(heartbeat('node-a', 1000, [readyVm('vm-1')]));
    expect((await repo.listVms()).map((v) => v.id)).toEqual(['vm-1']);
  });
});
