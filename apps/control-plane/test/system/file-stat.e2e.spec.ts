// file.stat through the whole stack (issue 16, acceptance 1: an operation added in one place):
// REST and Connect, the permission on the VM's project, a restricted binding's file paths, the
// audit trail. Real nats-server, PostgreSQL, control plane, node daemon and agents.
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import { TEST_ADMIN_TOKEN } from '../../../../test/support/control-plane-process.js';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

describe('file.stat', () => {
  let stack: OneNodeStack;
  let dir: string;
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
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async function userWith(name: string, binding: Record<string, unknown>): Promise<void> {
    expect((await call('admin', 'POST', '/api/users', { username: name })).status).toBe(201);
    const b = await call('admin', 'POST', '/api/role-bindings', { user: name, ...binding });
    expect(b.status).toBe(201);
    const key = await call('admin', 'POST', `/api/users/${name}/api-keys`, {});
    tokens[name] = key.body.token as string;
  }

  beforeAll(async () => {
    stack = await startOneNodeStack({
      name: 'stat',
      vms: 1,
      simConfig: { files: { roots: ['/'] } },
    });
    dir = mkdtempSync(join(tmpdir(), 'lq-stat-'));
    writeFileSync(join(dir, 'file.txt'), 'twelve bytes', { mode: 0o640 });
    symlinkSync('file.txt', join(dir, 'link'));
    await userWith('viewer', { role: 'viewer' });
    await userWith('limited', {
      role: 'operator',
      restrictions: { exec_non_root: true, file_paths: [join(dir, 'nowhere')] },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const stat = (who: string, path: string, noFollow = false) =>
    call(
      who,
      'GET',
      `/api/vms/vm-1/files/stat?path=${encodeURIComponent(path)}${noFollow ? '&no_follow=true' : ''}`,
    );

  it('should describe a file, a directory and a link over REST', async () => {
    const file = await stat('admin', join(dir, 'file.txt'));
    expect(file.status).toBe(200);
    expect(file.body).toMatchObject({
      vm_id: 'vm-1',
      type: 'file',
      size: 12,
      mode: '0640',
      uid: 0,
      owner: 'root',
      link_target: null,
      modified_at: expect.stringMatching(/^\d{4}-/),
    });
    expect((await stat('admin', dir)).body).toMatchObject({ type: 'directory' });
    expect((await stat('admin', join(dir, 'link'))).body).toMatchObject({ type: 'file', size: 12 });
    expect((await stat('admin', join(dir, 'link'), true)).body).toMatchObject({
      type: 'symlink',
      link_target: 'file.txt',
    });
  });

  it('should answer 404 for a missing file and 400 for a relative path', async () => {
    expect((await stat('admin', join(dir, 'missing'))).status).toBe(404);
    const relative = await stat('admin', 'etc/hostname');
    expect(relative.status).toBe(400);
    expect(relative.body.message).toMatch(/absolute/);
  });

  it('should refuse the wrong callers, and audit the refusals and the reads', async () => {
    const viewer = await stat('viewer', join(dir, 'file.txt'));
    expect(viewer.status).toBe(403);
    expect(viewer.body.permission).toBe('guest.file.read');
    const limited = await stat('limited', join(dir, 'file.txt'));
    expect(limited.status).toBe(403);
    const denials = await call('admin', 'GET', '/api/audit/events?kind=denied&limit=50');
    const names = (denials.body.events as Array<{ actor: string }>).map((e) => e.actor);
    expect(names).toEqual(expect.arrayContaining(['viewer', 'limited']));
    const intents = await call('admin', 'GET', '/api/audit/events?operation=file.stat&limit=50');
    expect((intents.body.events as unknown[]).length).toBeGreaterThanOrEqual(2);
  });

  it('should answer over Connect JSON', async () => {
    const res = await fetch(`${stack.cp.url}/limiquantix.compute.v1.VMService/StatGuestFile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
      body: JSON.stringify({ vmId: 'vm-1', path: join(dir, 'file.txt') }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { stat: Record<string, unknown> };
    expect(body.stat).toMatchObject({ type: 'FILE_TYPE_REGULAR', size: '12', mode: 0o640 });
    const denied = await fetch(`${stack.cp.url}/limiquantix.compute.v1.VMService/StatGuestFile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', Authorization: `Bearer ${tokens.viewer}` },
      body: JSON.stringify({ vmId: 'vm-1', path: join(dir, 'file.txt') }),
    });
    expect(denied.status).toBe(403);
  });
});
