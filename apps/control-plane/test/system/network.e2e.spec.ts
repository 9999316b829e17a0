// Network re-configuration through the whole stack (issue 20 item 4): GET and PUT
// /api/vms/{id}/network, the confirmation once the guest reports the new addresses, the agent's
// rollback when it does not, manual confirmation, Connect, and the refusals (403 for the wrong
// user, 400 for bad input, nothing sent). Real nats-server, PostgreSQL, control plane, node
// daemon and agent; the simulated VM's network stack is ifupdown over a file in its work dir
// with ifup/ifdown recorders (scripts/sim-core.mjs), so this machine's network is never touched.
// The real backend runs in the QEMU guest (test/qemu).
/* eslint-disable @typescript-eslint/no-explicit-any */
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import { TEST_ADMIN_TOKEN } from '../../../../test/support/control-plane-process.js';

interface Reply {
  status: number;
  body: Record<string, any>;
}

const ORIGINAL = 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n';

/** An interface of this machine with an IPv4 address: the simulated agent reports it as live. */
function liveInterface(): { name: string; cidr: string } {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const v4 = addrs?.find((a) => a.family === 'IPv4' && !a.internal && a.cidr);
    if (v4 && !/^(lo|veth|docker|virbr|br-)/.test(name) && name.length <= 15) {
      return { name, cidr: v4.cidr! };
    }
  }
  throw new Error('this machine has no non-loopback IPv4 interface for the test to use');
}

describe('guest network re-configuration through the stack', () => {
  let stack: OneNodeStack;
  let workDir: string;
  const tokens: Record<string, string> = { admin: TEST_ADMIN_TOKEN };

  async function call(who: string, method: string, path: string, body?: unknown): Promise<Reply> {
    const res = await fetch(`${stack.cp.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${tokens[who]}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
  }

  async function userWith(name: string, binding: Record<string, unknown>): Promise<void> {
    expect((await call('admin', 'POST', '/api/users', { username: name })).status).toBe(201);
    const b = await call('admin', 'POST', '/api/role-bindings', { user: name, ...binding });
    expect(b.status).toBe(201);
    const key = await call('admin', 'POST', `/api/users/${name}/api-keys`, {});
    tokens[name] = key.body.token as string;
  }

  const interfacesFile = () => readFileSync(join(workDir, 'interfaces'), 'utf8');
  const recorded = () =>
    readFileSync(join(workDir, 'shutdown.log'), 'utf8').trim().split('\n').filter(Boolean);
  const put = (who: string, body: unknown) => call(who, 'PUT', '/api/vms/vm-1/network', body);
  const outcomes = async () =>
    (
      await call(
        'admin',
        'GET',
        '/api/audit/events?operation=network.configure&kind=outcome&limit=50',
      )
    ).body.events as Array<Record<string, any>>;

  beforeAll(async () => {
    stack = await startOneNodeStack({ name: 'network', vms: 1 });
    workDir = stack.sim.vms[0]!.workDir;
    await userWith('viewer', { role: 'viewer' });
    await userWith('runner', { role: 'operator', restrictions: { exec_non_root: true } });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('should show the configuration the agent reads, its backend and the live addresses', async () => {
    const r = await call('admin', 'GET', '/api/vms/vm-1/network');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      vm_id: 'vm-1',
      backend: 'ifupdown',
      interfaces: [
        {
          name: 'eth0',
          addressing: 'dhcp',
          addresses: [],
          gateway: null,
          dns_servers: [],
          search_domains: [],
          mtu: null,
        },
      ],
      config_files: [join(workDir, 'interfaces')],
      last_apply: null,
    });
    expect(r.body.live.length).toBeGreaterThan(0);
  });

  it('should render the native file without applying anything on a dry run', async () => {
    const r = await put('admin', {
      interfaces: [
        {
          name: 'eth0',
          addressing: 'static',
          addresses: ['10.0.2.50/24'],
          gateway: '10.0.2.2',
          mtu: 1400,
        },
      ],
      dry_run: true,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ outcome: 'dry_run', apply_id: null, backend: 'ifupdown' });
    expect(r.body.files[0].path).toBe(join(workDir, 'interfaces'));
    expect(r.body.files[0].content).toContain(
      'iface eth0 inet static\n    address 10.0.2.50\n    netmask 255.255.255.0\n    gateway 10.0.2.2\n    mtu 1400',
    );
    expect(interfacesFile()).toBe(ORIGINAL);
    expect(recorded()).toEqual([]);
  });

  it('should apply and confirm once the guest reports the new addresses, auditing both configurations', async () => {
    const live = liveInterface();
    const r = await put('admin', {
      interfaces: [
        {
          name: live.name,
          addressing: 'static',
          addresses: [live.cidr],
          dns_servers: ['192.0.2.53'],
        },
      ],
      confirm_timeout_seconds: 60,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      outcome: 'confirmed',
      backend: 'ifupdown',
      status: { state: 'confirmed', apply_id: r.body.apply_id },
      interfaces: [{ name: live.name, addressing: 'static', addresses: [live.cidr] }],
    });
    expect(interfacesFile()).toContain(`iface ${live.name} inet static`);
    expect(recorded()).toContain(`ifup ${live.name}`);
    expect(existsSync(join(workDir, 'network-pending.json'))).toBe(false);
    const [row] = (await outcomes()).filter((e) => e.params?.apply_id === r.body.apply_id);
    expect(row).toMatchObject({
      status: 'confirmed',
      params: {
        backend: 'ifupdown',
        new: [{ name: live.name, addresses: [live.cidr], dns_servers: ['192.0.2.53'] }],
      },
    });
    expect(Array.isArray(row!.params.previous)).toBe(true);
    const after = await call('admin', 'GET', '/api/vms/vm-1/network');
    expect(after.body.last_apply).toMatchObject({ state: 'confirmed', apply_id: r.body.apply_id });
  });

  it('should not confirm, and report rolled_back, when the guest never holds the new address', async () => {
    const before = interfacesFile();
    const r = await put('admin', {
      interfaces: [
        { name: 'eth0', addressing: 'static', addresses: ['10.99.0.5/24'], gateway: '10.99.0.1' },
      ],
      confirm_timeout_seconds: 5,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      outcome: 'rolled_back',
      status: { state: 'rolled_back', reason: 'confirmation deadline passed' },
    });
    expect(interfacesFile()).toBe(before);
    const [row] = (await outcomes()).filter((e) => e.params?.apply_id === r.body.apply_id);
    expect(row).toMatchObject({
      status: 'rolled_back',
      params: { reason: 'confirmation deadline passed' },
    });
  }, 90_000);

  it('should leave the confirmation to the caller with manual_confirm, and refuse a second apply meanwhile', async () => {
    const r = await put('admin', {
      interfaces: [{ name: 'eth0', addressing: 'dhcp' }],
      manual_confirm: true,
      confirm_timeout_seconds: 120,
    });
    expect(r.body).toMatchObject({ outcome: 'pending', status: null });
    expect(interfacesFile()).toContain('iface eth0 inet dhcp');
    const second = await put('admin', {
      interfaces: [{ name: 'eth0', addressing: 'dhcp' }],
      manual_confirm: true,
    });
    expect(second.status).toBe(409);
    const confirmed = await call('admin', 'POST', '/api/vms/vm-1/network/confirm', {
      apply_id: r.body.apply_id,
    });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ state: 'confirmed', apply_id: r.body.apply_id });
    const unknown = await call('admin', 'POST', '/api/vms/vm-1/network/confirm', {
      apply_id: '00000000-0000-4000-8000-000000000000',
    });
    expect(unknown.status).toBe(404);
  });

  it('should refuse bad input with 400 naming the problem, sending nothing', async () => {
    const before = recorded().length;
    const intents = async () =>
      (
        await call(
          'admin',
          'GET',
          '/api/audit/events?operation=network.configure&kind=intent&limit=200',
        )
      ).body.events.length as number;
    const intentsBefore = await intents();
    const cases: Array<[unknown, string]> = [
      [
        {
          interfaces: [
            {
              name: 'eth0',
              addressing: 'static',
              addresses: ['10.0.2.50/24'],
              gateway: '10.0.3.1',
            },
          ],
        },
        'not inside any of the addresses',
      ],
      [
        { interfaces: [{ name: 'eth0', addressing: 'static', addresses: ['10.0.2.350/24'] }] },
        'not an address with a prefix length',
      ],
      [{ interfaces: [{ name: 'eth0', addressing: 'static' }] }, 'needs at least one'],
      [
        { interfaces: [{ name: 'eth0', addressing: 'dhcp', mtu: 100 }] },
        'mtu must be 0 (default) or 576-9000',
      ],
      [{ interfaces: [{ name: 'eth0;reboot', addressing: 'dhcp' }] }, 'interfaces.name'],
      [{ interfaces: [{ name: 'eth0', addressing: 'bootp' }] }, 'dhcp or static'],
      [{ interfaces: [] }, 'interfaces'],
      [
        { interfaces: [{ name: 'eth0', addressing: 'dhcp' }], confirm_timeout_seconds: 2 },
        'at least 5',
      ],
      [
        { interfaces: [{ name: 'eth0', addressing: 'dhcp', dns_servers: ['dns.example.com'] }] },
        'is not an address',
      ],
      [{ interfaces: [{ name: 'eth0', addressing: 'dhcp' }], extra: 1 }, 'extra'],
    ];
    for (const [body, message] of cases) {
      const r = await put('admin', body);
      expect([r.status, JSON.stringify(r.body)]).toEqual([400, expect.stringContaining(message)]);
    }
    expect(recorded()).toHaveLength(before);
    expect(await intents()).toBe(intentsBefore);
  });

  it('should refuse the wrong user with 403 and audit the refusal, applying nothing', async () => {
    const before = [recorded().length, interfacesFile()];
    const body = { interfaces: [{ name: 'eth0', addressing: 'dhcp' }] };
    const viewer = await put('viewer', body);
    expect([viewer.status, viewer.body.permission]).toEqual([403, 'guest.network.configure']);
    const confirm = await call('viewer', 'POST', '/api/vms/vm-1/network/confirm', {
      apply_id: '00000000-0000-4000-8000-000000000000',
    });
    expect(confirm.status).toBe(403);
    // A binding limited to non-root commands keeps no root operation it was not given.
    expect((await put('runner', body)).status).toBe(403);
    // Reading is vm.read.
    expect((await call('viewer', 'GET', '/api/vms/vm-1/network')).status).toBe(200);
    expect([recorded().length, interfacesFile()]).toEqual(before);
    const denied = (await call('admin', 'GET', '/api/audit/events?kind=denied&limit=100')).body
      .events as Array<{ actor: string; operation: string }>;
    expect(denied.map((d) => `${d.actor} ${d.operation}`)).toEqual(
      // The viewer lacks the permission anywhere (refused at the route); the runner holds it on
      // the project but its binding keeps no root operation (refused by the operation's path).
      expect.arrayContaining([
        'viewer PUT /api/vms/:id/network',
        'viewer POST /api/vms/:id/network/confirm',
        'runner network.configure',
      ]),
    );
  });

  it('should answer over Connect JSON, and refuse the viewer there too', async () => {
    const connect = (who: string, method: string, body: unknown) =>
      call(who, 'POST', `/limiquantix.compute.v1.VMService/${method}`, body);
    const got = await connect('admin', 'GetGuestNetwork', { vmId: 'vm-1' });
    expect(got.status).toBe(200);
    expect(got.body.result.backend).toBe('NETWORK_BACKEND_IFUPDOWN');
    const dry = await connect('admin', 'ConfigureGuestNetwork', {
      vmId: 'vm-1',
      interfaces: [{ name: 'eth1', addressing: 'NETWORK_ADDRESSING_DHCP' }],
      dryRun: true,
    });
    expect(dry.status).toBe(200);
    expect(dry.body.outcome).toBe('dry_run');
    expect(dry.body.applied.files[0].content).toContain('iface eth1 inet dhcp');
    const bad = await connect('admin', 'ConfigureGuestNetwork', {
      vmId: 'vm-1',
      interfaces: [{ name: 'eth1' }],
      dryRun: true,
    });
    expect(bad.status).toBe(400);
    expect(
      (
        await connect('viewer', 'ConfigureGuestNetwork', {
          vmId: 'vm-1',
          interfaces: [],
          dryRun: true,
        })
      ).status,
    ).toBe(403);
  });
});
