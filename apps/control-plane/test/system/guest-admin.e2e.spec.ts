// Quiesce, time sync, password reset and on-demand facts (issue 9) through the real stack with
// simulated VMs whose host-touching commands (fsfreeze, chpasswd, the clock, the RTC) are the
// recorder: nothing here freezes, re-clocks or changes a password of this machine. The real
// guest runs them for real in test/qemu.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type SimVms } from '../../../../test/support/sim-vms.js';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import {
  adminFetch,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

describe('quiesce, time sync and password through the stack (simulated VMs)', () => {
  let stack: OneNodeStack | undefined;
  let sim: SimVms;
  let cp: RunningControlPlane;

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await adminFetch(`${cp.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const recorded = () => readFileSync(sim.vms[0]!.shutdownLog, 'utf8').trim().split('\n');

  beforeAll(async () => {
    stack = await startOneNodeStack({ name: 'admin', vms: 1 });
    ({ sim, cp } = stack);
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('should freeze, refuse other operations while frozen, and thaw', async () => {
    const workDir = sim.vms[0]!.workDir;
    const q = await api('POST', '/api/vms/vm-1/quiesce', { timeout_seconds: 60 });
    expect(q.status).toBe(200);
    expect(q.body.frozen).toEqual([workDir]);
    expect((await api('GET', '/api/vms/vm-1/quiesce')).body).toMatchObject({ frozen: true });
    const blocked = await api('POST', '/api/vms/vm-1/execute', { command: 'true' });
    expect(blocked.status).toBe(409);
    expect(blocked.body.agentCode).toBe('FROZEN');
    expect((await api('POST', '/api/vms/vm-1/ping', {})).status).toBe(200);
    const t = await api('POST', '/api/vms/vm-1/thaw');
    expect(t.body).toMatchObject({ was_frozen: true, thawed: [workDir] });
    expect(recorded()).toEqual(
      expect.arrayContaining([`fsfreeze --freeze ${workDir}`, `fsfreeze --unfreeze ${workDir}`]),
    );
    const events = (await api('GET', '/api/audit/events?vm_id=vm-1&kind=outcome&limit=50')).body
      .events as Array<{ operation: string; status: string }>;
    expect(events.filter((e) => e.operation === 'quiesce' || e.operation === 'thaw')).toHaveLength(
      2,
    );
  });

  it('should thaw by itself after timeout_seconds', async () => {
    await api('POST', '/api/vms/vm-1/quiesce', { timeout_seconds: 1 });
    const started = Date.now();
    let status: Record<string, any> = {};
    // The outcome, waited for generously (timers run late on a busy machine).
    while (Date.now() - started < 20_000) {
      status = (await api('GET', '/api/vms/vm-1/quiesce')).body;
      if (!status.frozen) {
        break;
      }
      await sleep(100);
    }
    expect(status.frozen).toBe(false);
    expect(status.last_auto_thaw).toEqual(expect.any(String));
  });

  it('should set the clock from the control plane with force, and the RTC', async () => {
    const r = await api('POST', '/api/vms/vm-1/sync-time', { force: true });
    expect(r.status).toBe(200);
    expect(r.body.method).toBe('host_time');
    expect(Math.abs(r.body.offset_before_ms as number)).toBeLessThan(5000);
    expect(recorded().some((l) => /^set-clock @\d+\.\d{3}$/.test(l))).toBe(true);
    expect(recorded()).toContain('hwclock');
  });

  it('should reset a password without it reaching the audit trail', async () => {
    const secret = 'Very-Secret-Password-913';
    const r = await api('POST', '/api/vms/vm-1/password', { username: 'nobody', password: secret });
    expect(r.status).toBe(200);
    expect(recorded()).toContain('chpasswd');
    const events = await api('GET', '/api/audit/events?operation=password.set');
    expect(events.body.events).toHaveLength(2);
    const ndjson = await (
      await adminFetch(`${cp.url}/api/audit/events?format=ndjson&limit=1000`)
    ).text();
    expect(ndjson).not.toContain(secret);
    expect(ndjson).toContain('password set for user nobody');
    expect(cp.output()).not.toContain(secret);
    const unknown = await api('POST', '/api/vms/vm-1/password', {
      username: 'nobody-here',
      password: 'x',
    });
    expect(unknown.status).toBe(400);
  });

  it('should answer filesystems, OS and interfaces on demand', async () => {
    const fs = await api('GET', '/api/vms/vm-1/filesystems');
    expect(fs.body.filesystems).toEqual([
      expect.objectContaining({
        mount_point: sim.vms[0]!.workDir,
        fs_type: 'ext4',
        freezable: true,
      }),
    ]);
    expect((await api('GET', '/api/vms/vm-1/os')).body.os).toMatchObject({
      name: expect.any(String),
      kernel_release: expect.any(String),
      pretty_name: expect.any(String),
    });
    expect(Array.isArray((await api('GET', '/api/vms/vm-1/interfaces')).body.interfaces)).toBe(
      true,
    );
  });

  it('should quiesce and thaw over Connect JSON too', async () => {
    const call = (method: string, body: unknown) =>
      api('POST', `/limiquantix.compute.v1.VMService/${method}`, body);
    const q = await call('QuiesceFilesystems', { vmId: 'vm-1', timeoutSeconds: 30 });
    expect(q.status).toBe(200);
    expect(q.body.result.frozen).toEqual([sim.vms[0]!.workDir]);
    expect((await call('GetQuiesceStatus', { vmId: 'vm-1' })).body.status.frozen).toBe(true);
    expect((await call('ThawFilesystems', { vmId: 'vm-1' })).body.result.wasFrozen).toBe(true);
    const pw = await call('SetGuestUserPassword', {
      vmId: 'vm-1',
      username: 'nobody',
      password: 'x-y-z-123',
    });
    expect(pw.status).toBe(200);
  });
});
