// A VM id belongs to one node (issue 15, item 4). Two real node daemons on one nats-server, each
// with a libvirt-layout channel directory holding a domain named `dup` whose channel socket is a
// real agent, and libvirt status XML fixtures giving the two domains different UUIDs; a real
// control plane on a real PostgreSQL. Both VMs must be listed and reachable separately; a forged
// heartbeat (or event) of node-2 naming node-1's VMs must be refused, logged, counted and
// audited; and moving a VM to another node must be an explicit, audited step of a global admin.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AgentEventSchema, AgentState, NodeHeartbeatSchema, subjects } from '@lq/proto';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  TEST_ADMIN_TOKEN,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import type { VmView } from '@lq/api';

const AGENT_PORT = 'org.limiquantix.agent.0';
const UUID_1 = '3f1c8a52-6d0e-4b7a-9c41-0a1b2c3d4e01';
const UUID_2 = 'b7e2d913-22aa-4f0c-8e55-9f8e7d6c5b02';

/** libvirt's status XML (/run/libvirt/qemu/<name>.xml) for a running domain, trimmed. */
function statusXml(name: string, id: number, uuid: string): string {
  return `<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit ${name}
-->
<domstatus state='running' reason='booted' pid='4242'>
  <taint flag='high-privileges'/>
  <monitor path='/var/lib/libvirt/qemu/domain-${id}-${name}/monitor.sock' type='unix'/>
  <vcpus>
    <vcpu id='0' pid='4250'/>
  </vcpus>
  <domain type='kvm' id='${id}'>
    <name>${name}</name>
    <uuid>${uuid}</uuid>
    <memory unit='KiB'>1048576</memory>
    <os>
      <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
    </os>
    <devices>
      <channel type='unix'>
        <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-${id}-${name}/${AGENT_PORT}'/>
        <target type='virtio' name='${AGENT_PORT}' state='connected'/>
      </channel>
    </devices>
  </domain>
</domstatus>
`;
}

interface Reply {
  status: number;
  body: Record<string, any>;
}

describe('VM identity across nodes', () => {
  let work: string;
  let nats: RunningNats;
  let db: TestDatabase;
  let sim1: SimVms;
  let sim2: SimVms;
  let cp: RunningControlPlane;
  let daemon1: RunningNodeDaemon;
  let daemon2: RunningNodeDaemon;
  let nc: NatsConnection;
  const channels = { 'node-1': '', 'node-2': '' };
  const tokens: Record<string, string> = { admin: TEST_ADMIN_TOKEN };

  async function call(who: string, method: string, path: string, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = { Authorization: `Bearer ${tokens[who]}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${cp.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: Record<string, any>;
    try {
      parsed = JSON.parse(text) as Record<string, any>;
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed };
  }

  /** The pid of the agent that ran the command: the parent of its shell. */
  async function agentPidOf(vmId: string): Promise<number> {
    const r = await call('admin', 'POST', `/api/vms/${vmId}/execute`, {
      command: 'echo $PPID',
      timeout_seconds: 10,
    });
    expect([vmId, r.status, r.body.exit_code]).toEqual([vmId, 200, 0]);
    return Number(String(r.body.stdout).trim());
  }

  async function vm(id: string): Promise<VmView> {
    const r = await call('admin', 'GET', `/api/vms/${id}`);
    expect([id, r.status]).toEqual([id, 200]);
    return r.body as VmView;
  }

  async function refusedClaims(node: string): Promise<number> {
    const text = await (await fetch(`${cp.url}/metrics`)).text();
    const m = new RegExp(`^lq_inventory_claims_refused_total\\{node="${node}"\\} (\\d+)`, 'm').exec(
      text,
    );
    return m ? Number(m[1]) : 0;
  }

  async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v !== undefined) {
        return v;
      }
      if (Date.now() > deadline) {
        throw new Error(`no ${what} within ${ms} ms`);
      }
      await sleep(100);
    }
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-vmid-'));
    const layout = (node: 'node-1' | 'node-2', uuid: string) => {
      const ch = join(work, node, 'ch');
      const run = join(work, node, 'run');
      mkdirSync(join(ch, 'domain-1-dup'), { recursive: true });
      mkdirSync(run, { recursive: true });
      writeFileSync(join(run, 'dup.xml'), statusXml('dup', 1, uuid));
      channels[node] = ch;
      return run;
    };
    const run1 = layout('node-1', UUID_1);
    const run2 = layout('node-2', UUID_2);
    [nats, db, sim1, sim2] = await Promise.all([
      startNatsServer(),
      createTestDatabase('lq_vmid'),
      // n1-1 is node-1's `dup`, n1-2 a flat-layout VM `solo` that later moves to node-2.
      startSimVms({ dir: join(work, 'sim-1'), count: 2, prefix: 'n1-' }),
      startSimVms({ dir: join(work, 'sim-2'), count: 1, prefix: 'n2-' }),
    ]);
    // The agents' sockets, placed where libvirt would put each domain's channel socket.
    symlinkSync(sim1.vms[0]!.socketPath, join(channels['node-1'], 'domain-1-dup', AGENT_PORT));
    symlinkSync(sim1.vms[1]!.socketPath, join(channels['node-1'], 'solo.sock'));
    symlinkSync(sim2.vms[0]!.socketPath, join(channels['node-2'], 'domain-1-dup', AGENT_PORT));
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_NODE_STALE_MS: '15000', LQ_LOCATION_CACHE_MS: '0' },
    });
    [daemon1, daemon2] = await Promise.all([
      startNodeDaemon({
        nodeId: 'node-1',
        natsUrl: nats.url,
        channelDirs: [channels['node-1']],
        env: { LQ_LIBVIRT_RUN_DIR: run1 },
      }),
      startNodeDaemon({
        nodeId: 'node-2',
        natsUrl: nats.url,
        channelDirs: [channels['node-2']],
        env: { LQ_LIBVIRT_RUN_DIR: run2 },
      }),
    ]);
    nc = await connect({ servers: nats.url });
    await waitForReadyVms(cp.url, 1, { ids: ['solo'], timeoutMs: 30_000 });
    await until('both nodes in the inventory', async () => {
      const nodes = (await call('admin', 'GET', '/api/nodes')).body.nodes as any[];
      return nodes.length === 2 ? true : undefined;
    });
  });

  afterAll(async () => {
    if (process.env.LQ_TEST_DUMP) {
      process.stderr.write(`--- cp ---\n${cp?.output()}\n--- node-1 ---\n${daemon1?.output()}\n`);
    }
    await nc?.close();
    await cp?.stop();
    await Promise.all([daemon1?.stop(), daemon2?.stop()]);
    await Promise.all([sim1?.stop(), sim2?.stop()]);
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should list both domains named dup, each by its UUID on its node, and reach each one separately', async () => {
    await waitForReadyVms(cp.url, 2, { ids: [UUID_1, UUID_2], timeoutMs: 20_000 });
    const list = await call('admin', 'GET', '/api/vms');
    const dups = (list.body.vms as VmView[])
      .filter((v) => v.name === 'dup')
      .map((v) => [v.id, v.node_id, v.agent_state])
      .sort();
    expect(dups).toEqual([
      [UUID_1, 'node-1', 'ready'],
      [UUID_2, 'node-2', 'ready'],
    ]);

    const [pid1, pid2] = [await agentPidOf(UUID_1), await agentPidOf(UUID_2)];

    expect(pid1).toBe(sim1.vms[0]!.pid);
    expect(pid2).toBe(sim2.vms[0]!.pid);
    expect(pid1).not.toBe(pid2);
  });

  it('should refuse a forged heartbeat and event of node-2 naming node-1 VMs, and log, count and audit it', async () => {
    const before = await refusedClaims('node-2');
    const onNode1 = (await call('admin', 'GET', '/api/vms')).body.vms as VmView[];
    const stolen = onNode1.filter((v) => v.node_id === 'node-1').map((v) => v.id);
    expect(stolen).toContain('solo');

    nc.publish(
      subjects.heartbeat('node-2'),
      toBinary(
        NodeHeartbeatSchema,
        create(NodeHeartbeatSchema, {
          nodeId: 'node-2',
          hostname: 'evil',
          daemonVersion: '0.1.0',
          timestamp: timestampNow(),
          fileChunkMaxBytes: 65_536,
          vms: stolen.map((vmId) => ({ vmId, name: 'dup', state: AgentState.READY })),
        }),
      ),
    );
    nc.publish(
      subjects.event('node-2', UUID_1, 'ready'),
      toBinary(
        AgentEventSchema,
        create(AgentEventSchema, {
          nodeId: 'node-2',
          vmId: UUID_1,
          kind: 'ready',
          timestamp: timestampNow(),
          status: { vmId: UUID_1, state: AgentState.READY },
        }),
      ),
    );
    await nc.flush();
    // Until the control plane has counted the refusals, or (before the fix) moved a VM.
    await until('refusal or takeover', async () => {
      const moved = (await Promise.all(stolen.map(vm))).some((v) => v.node_id !== 'node-1');
      return moved || (await refusedClaims('node-2')) >= before + 3 ? true : undefined;
    });

    for (const id of stolen) {
      expect([id, (await vm(id)).node_id]).toEqual([id, 'node-1']);
    }
    expect(await agentPidOf('solo')).toBe(sim1.vms[1]!.pid);
    expect(stolen.sort()).toEqual([UUID_1, 'solo']);
    expect(await agentPidOf(UUID_1)).toBe(sim1.vms[0]!.pid);
    expect(await refusedClaims('node-2')).toBeGreaterThanOrEqual(before + 3);
    const audit = await call('admin', 'GET', `/api/audit/events?kind=denied&vm_id=${UUID_1}`);
    expect(audit.body.events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          actor: 'node:node-2',
          operation: 'inventory.claim',
          vm_id: UUID_1,
          node_id: 'node-2',
          status: 'CLAIM_REFUSED',
          params: expect.objectContaining({ owner: 'node-1' }),
        }),
      ]),
    );
    expect(cp.output()).toMatch(new RegExp(`refused node node-2's claim on VM ${UUID_1}`));
  });

  it('should move a VM to another node only on a global admin’s explicit, audited request', async () => {
    for (const [name, binding] of [
      ['operator', { role: 'operator' }],
      ['project-admin', { role: 'admin', project: 'default' }],
    ] as const) {
      expect((await call('admin', 'POST', '/api/users', { username: name })).status).toBe(201);
      const b = await call('admin', 'POST', '/api/role-bindings', { user: name, ...binding });
      expect(b.status).toBe(201);
      const key = await call('admin', 'POST', `/api/users/${name}/api-keys`, { name: 't' });
      tokens[name] = key.body.token as string;
    }

    // The VM migrates: its channel leaves node-1 and appears on node-2.
    unlinkSync(join(channels['node-1'], 'solo.sock'));
    await until('solo gone from node-1', async () =>
      (await vm('solo')).agent_state === 'gone' ? true : undefined,
    );
    const before = await refusedClaims('node-2');
    symlinkSync(sim1.vms[1]!.socketPath, join(channels['node-2'], 'solo.sock'));
    await until('node-2 claim refused', async () =>
      (await refusedClaims('node-2')) > before ? true : undefined,
    );
    expect((await vm('solo')).node_id).toBe('node-1');

    for (const who of ['operator', 'project-admin']) {
      const denied = await call(who, 'PUT', '/api/vms/solo/node', { node: 'node-2' });
      expect([who, denied.status, denied.body.code]).toEqual([who, 403, 'PERMISSION_DENIED']);
      const rows = await call('admin', 'GET', `/api/audit/events?kind=denied&actor=${who}`);
      expect([who, rows.body.events.length]).toEqual([who, 1]);
    }
    expect((await call('admin', 'PUT', '/api/vms/solo/node', { node: 'nowhere' })).status).toBe(
      404,
    );
    expect((await call('admin', 'PUT', '/api/vms/solo/node', { node: 'a.b' })).status).toBe(400);
    expect((await vm('solo')).node_id).toBe('node-1');

    const moved = await call('admin', 'PUT', '/api/vms/solo/node', { node: 'node-2' });

    expect([moved.status, moved.body]).toEqual([
      200,
      { vm_id: 'solo', node: 'node-2', previous_node: 'node-1' },
    ]);
    await waitForReadyVms(cp.url, 1, { ids: ['solo'], timeoutMs: 15_000 });
    expect((await vm('solo')).node_id).toBe('node-2');
    expect(await agentPidOf('solo')).toBe(sim1.vms[1]!.pid);
    const audit = await call('admin', 'GET', '/api/audit/events?kind=admin&vm_id=solo');
    expect(audit.body.events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          actor: 'admin',
          operation: 'vm.set_node',
          params: { node: 'node-2', previous_node: 'node-1' },
        }),
      ]),
    );
  });
});
