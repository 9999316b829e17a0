// Guest directories through the whole stack (issue 20 item 3): file.list, file.mkdir,
// file.rename and file.delete over REST and Connect, each audited, each refused to a caller
// without the permission or outside its binding's file_paths (403, audited denial). Real
// nats-server, PostgreSQL, control plane, node daemon and agents; the agents' files.roots is
// this test's own directory, so nothing else on the machine can be touched.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import { TEST_ADMIN_TOKEN } from '../../../../test/support/control-plane-process.js';

interface Reply {
  status: number;
  body: Record<string, any>;
}

describe('guest directories through the stack', () => {
  let stack: OneNodeStack;
  let root: string;
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

  const q = (path: string) => encodeURIComponent(path);
  const list = (who: string, path: string, extra = '') =>
    call(who, 'GET', `/api/vms/vm-1/files/list?path=${q(path)}${extra}`);
  const connect = (who: string, method: string, body: unknown) =>
    call(who, 'POST', `/limiquantix.compute.v1.VMService/${method}`, body);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'lq-tree-e2e-'));
    mkdirSync(join(root, 'shared'));
    mkdirSync(join(root, 'team'));
    stack = await startOneNodeStack({
      name: 'filetree',
      vms: 1,
      simConfig: { files: { roots: [root] } },
    });
    await userWith('viewer', { role: 'viewer' });
    await userWith('limited', {
      role: 'operator',
      restrictions: { file_paths: [join(root, 'team')] },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('should list a directory in sorted pages with a cursor', async () => {
    const dir = join(root, 'shared/listing');
    mkdirSync(dir);
    for (const name of ['c', 'a', 'e', 'b', 'd']) {
      writeFileSync(join(dir, name), name.repeat(3));
    }
    const first = await list('admin', dir, '&limit=2');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      vm_id: 'vm-1',
      path: dir,
      resolved_path: dir,
      total_entries: 5,
      next_cursor: 'b',
    });
    expect(first.body.entries[0]).toMatchObject({
      name: 'a',
      type: 'file',
      size: 3,
      owner: expect.any(String),
      modified_at: expect.stringMatching(/^\d{4}-/),
      link_target: null,
    });
    const namesOf = (body: Record<string, any>) =>
      (body.entries as Array<{ name: string }>).map((e) => e.name);
    const names = namesOf(first.body);
    let cursor: string | null = first.body.next_cursor;
    while (cursor) {
      const page = await list('admin', dir, `&limit=2&cursor=${q(cursor)}`);
      names.push(...namesOf(page.body));
      cursor = page.body.next_cursor;
    }
    expect(names).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect((await list('admin', dir, '&limit=0')).status).toBe(400);
    expect((await list('admin', 'relative')).status).toBe(400);
    expect((await list('admin', join(root, 'missing'))).status).toBe(404);
    const outside = await list('admin', '/etc');
    expect([outside.status, outside.body.agentCode]).toEqual([403, 'PATH_NOT_ALLOWED']);
  });

  it('should create, rename and delete over REST, with conflicts as 409', async () => {
    const base = join(root, 'shared/work');
    const made = await call('admin', 'POST', '/api/vms/vm-1/files/mkdir', {
      path: join(base, 'x/y'),
      parents: true,
      mode: '0750',
    });
    expect(made.status).toBe(201);
    expect(made.body.created).toEqual([base, join(base, 'x'), join(base, 'x/y')]);
    const again = await call('admin', 'POST', '/api/vms/vm-1/files/mkdir', { path: base });
    expect([again.status, again.body.agentCode]).toEqual([409, 'ALREADY_EXISTS']);
    const badMode = await call('admin', 'POST', '/api/vms/vm-1/files/mkdir', {
      path: join(base, 'z'),
      mode: 'rwx',
    });
    expect(badMode.status).toBe(400);

    writeFileSync(join(base, 'x/y/file'), 'data');
    const renamed = await call('admin', 'POST', '/api/vms/vm-1/files/rename', {
      from: join(base, 'x/y/file'),
      to: join(base, 'moved'),
    });
    expect(renamed.status).toBe(200);
    expect(existsSync(join(base, 'moved'))).toBe(true);

    const notEmpty = await call('admin', 'DELETE', `/api/vms/vm-1/files?path=${q(base)}`);
    expect([notEmpty.status, notEmpty.body.message]).toEqual([
      400,
      expect.stringMatching(/not empty; set recursive/),
    ]);
    const gone = await call(
      'admin',
      'DELETE',
      `/api/vms/vm-1/files?path=${q(base)}&recursive=true`,
    );
    expect(gone.status).toBe(200);
    expect(gone.body).toMatchObject({ vm_id: 'vm-1', path: base, removed: 4 });
    expect(existsSync(base)).toBe(false);
    const rootItself = await call(
      'admin',
      'DELETE',
      `/api/vms/vm-1/files?path=${q(root)}&recursive=true`,
    );
    expect(rootItself.status).toBe(403);
    expect(existsSync(root)).toBe(true);
    const slash = await call('admin', 'DELETE', `/api/vms/vm-1/files?path=${q('/')}`);
    expect(slash.status).toBe(400);

    const intents = await call(
      'admin',
      'GET',
      '/api/audit/events?kind=intent&vm_id=vm-1&limit=200',
    );
    const ops = new Set(
      (intents.body.events as Array<{ operation: string }>).map((e) => e.operation),
    );
    for (const op of ['file.list', 'file.mkdir', 'file.rename', 'file.delete']) {
      expect(ops).toContain(op);
    }
  });

  it('should refuse a viewer and a caller outside its file_paths, and audit the refusals', async () => {
    mkdirSync(join(root, 'team/t'));
    writeFileSync(join(root, 'shared/s'), 's');
    const viewer = [
      await list('viewer', root),
      await call('viewer', 'POST', '/api/vms/vm-1/files/mkdir', { path: join(root, 'v') }),
      await call('viewer', 'POST', '/api/vms/vm-1/files/rename', {
        from: join(root, 'shared/s'),
        to: join(root, 'shared/s2'),
      }),
      await call('viewer', 'DELETE', `/api/vms/vm-1/files?path=${q(join(root, 'shared/s'))}`),
    ];
    // A viewer holds vm.read but neither file permission.
    expect(viewer.map((r) => r.status)).toEqual([403, 403, 403, 403]);
    expect(viewer.map((r) => r.body.permission as string)).toEqual([
      'guest.file.read',
      'guest.file.write',
      'guest.file.write',
      'guest.file.write',
    ]);

    // Inside its file_paths the limited operator may work; outside, each is refused.
    expect((await list('limited', join(root, 'team'))).status).toBe(200);
    const limited = [
      await list('limited', join(root, 'shared')),
      await call('limited', 'POST', '/api/vms/vm-1/files/mkdir', { path: join(root, 'shared/l') }),
      // A rename out of its paths: the target is outside.
      await call('limited', 'POST', '/api/vms/vm-1/files/rename', {
        from: join(root, 'team/t'),
        to: join(root, 'shared/t'),
      }),
      await call('limited', 'DELETE', `/api/vms/vm-1/files?path=${q(join(root, 'shared/s'))}`),
    ];
    expect(limited.map((r) => r.status)).toEqual([403, 403, 403, 403]);
    expect(existsSync(join(root, 'team/t'))).toBe(true);
    expect(existsSync(join(root, 'shared/s'))).toBe(true);

    const denials = await call('admin', 'GET', '/api/audit/events?kind=denied&limit=100');
    const denied = (denials.body.events as Array<{ actor: string; operation: string }>).map(
      (e) => `${e.actor} ${e.operation}`,
    );
    for (const op of ['file.list', 'file.mkdir', 'file.rename', 'file.delete']) {
      expect(denied).toContain(`limited ${op}`);
    }
    expect(denied.filter((d) => d.startsWith('viewer ')).length).toBeGreaterThanOrEqual(4);
  });

  it('should answer over Connect JSON, and refuse the viewer there too', async () => {
    const dir = join(root, 'shared/connect');
    const made = await connect('admin', 'MakeGuestDirectory', { vmId: 'vm-1', path: dir });
    expect([made.status, made.body.created]).toEqual([200, [dir]]);
    writeFileSync(join(dir, 'one'), '1');
    const listed = await connect('admin', 'ListGuestFiles', { vmId: 'vm-1', path: dir });
    expect(listed.status).toBe(200);
    expect(listed.body.list).toMatchObject({
      entries: [{ name: 'one', type: 'FILE_TYPE_REGULAR', size: '1' }],
      totalEntries: '1',
    });
    const renamed = await connect('admin', 'RenameGuestFile', {
      vmId: 'vm-1',
      from: join(dir, 'one'),
      to: join(dir, 'two'),
    });
    expect(renamed.status).toBe(200);
    const deleted = await connect('admin', 'DeleteGuestFile', {
      vmId: 'vm-1',
      path: dir,
      recursive: true,
    });
    expect([deleted.status, deleted.body.removed]).toEqual([200, '2']);
    for (const [method, body] of [
      ['ListGuestFiles', { vmId: 'vm-1', path: root }],
      ['MakeGuestDirectory', { vmId: 'vm-1', path: join(root, 'c') }],
      ['RenameGuestFile', { vmId: 'vm-1', from: join(root, 'shared/s'), to: join(root, 'x') }],
      ['DeleteGuestFile', { vmId: 'vm-1', path: join(root, 'shared/s') }],
    ] as const) {
      expect((await connect('viewer', method, body)).status).toBe(403);
    }
    expect(existsSync(join(root, 'shared/s'))).toBe(true);
  });
});
