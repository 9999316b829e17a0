// Fleet runs (issue 8, acceptance 4) over 50 simulated VMs (real agents) through the real stack:
// the concurrency limit is checked from the agents' side (each command logs its start and end
// to a shared file), the error budget stops new starts, VMs the caller may not touch are denied.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import {
  adminFetch,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

const VMS = 50;

interface Run {
  id: string;
  status: string;
  summary: Record<string, number>;
  vms: Array<{ vm_id: string; state: string; execution_id: string | null }>;
}

/** The most commands that were running at once, from their start/end lines. */
function maxOverlap(log: string): number {
  const points = log
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .map(([kind, t]) => [BigInt(t!), kind === 'start' ? 1 : -1] as const)
    .sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1));
  let now = 0;
  let max = 0;
  for (const [, d] of points) {
    now += d;
    max = Math.max(max, now);
  }
  return max;
}

describe('fleet runs', () => {
  let stack: OneNodeStack | undefined;
  let work: string;
  let cp: RunningControlPlane;

  const api = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await adminFetch(`${cp.url}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const finished = async (id: string, token?: string): Promise<Run> => {
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      const r = (await api('GET', `/api/runs/${id}`, undefined, token)).body as unknown as Run;
      if (r.status !== 'running') {
        return r;
      }
      await sleep(200);
    }
    throw new Error(`run ${id} did not finish`);
  };
  const ids = (from: number, to: number) =>
    Array.from({ length: to - from + 1 }, (_, i) => `vm-${from + i}`);

  beforeAll(async () => {
    stack = await startOneNodeStack({ name: 'runs', vms: VMS, readyTimeoutMs: 60_000 });
    ({ work, cp } = stack);
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it('should never run more than max_concurrency at once and audit all 50 executions', async () => {
    const log = join(work, 'overlap.log');
    writeFileSync(log, '');
    const since = new Date().toISOString();
    const started = await api('POST', '/api/runs', {
      target: { vm_ids: ids(1, VMS) },
      command: `echo start $(date +%s%N) >> ${log}; sleep 0.3; echo end $(date +%s%N) >> ${log}`,
      max_concurrency: 10,
    });
    expect(started.status).toBe(202);
    const run = await finished(started.body.id as string);
    expect(run.status).toBe('succeeded');
    expect(run.summary).toEqual({ succeeded: VMS });
    const overlap = maxOverlap(readFileSync(log, 'utf8'));
    process.stderr.write(`[runs] most commands running at once: ${overlap}\n`);
    expect(overlap).toBeLessThanOrEqual(10);
    expect(overlap).toBeGreaterThanOrEqual(5);
    const history = (await api('GET', `/api/audit/executions?from=${since}&limit=1000&actor=admin`))
      .body.executions as Array<Record<string, unknown>>;
    const ofRun = history.filter((e) => (e.params as Record<string, unknown>).run_id === run.id);
    expect(ofRun).toHaveLength(VMS);
    expect(ofRun.every((e) => e.status === 'ok' && e.exit_code === 0)).toBe(true);
  }, 90_000);

  it('should stop starting new VMs once more than max_errors have failed', async () => {
    const started = await api('POST', '/api/runs', {
      target: { vm_ids: ids(1, 10) },
      command: 'exit 3',
      max_concurrency: 1,
      max_errors: 2,
    });
    const run = await finished(started.body.id as string);
    expect(run.status).toBe('stopped');
    expect(run.summary).toEqual({ failed: 3, skipped: 7 });
  }, 30_000);

  it('should target labels and report VMs the caller may not touch as denied', async () => {
    for (const vm of ids(1, 5)) {
      expect((await api('PUT', `/api/vms/${vm}/labels`, { labels: { env: 'prod' } })).status).toBe(
        200,
      );
    }
    expect((await api('POST', '/api/projects', { id: 'fleet-a' })).status).toBe(201);
    for (const vm of ids(1, 3)) {
      await api('PUT', `/api/vms/${vm}/project`, { project: 'fleet-a' });
    }
    await api('POST', '/api/users', { username: 'op-a' });
    await api('POST', '/api/role-bindings', { user: 'op-a', role: 'operator', project: 'fleet-a' });
    // op-a sees every VM (so the others are denied, not absent) but runs commands on fleet-a only.
    await api('POST', '/api/role-bindings', { user: 'op-a', role: 'viewer' });
    const key = (await api('POST', '/api/users/op-a/api-keys', {})).body.token as string;
    const started = await api(
      'POST',
      '/api/runs',
      { target: { labels: 'env=prod' }, command: 'true', max_concurrency: '50%' },
      key,
    );
    expect(started.status).toBe(202);
    const run = await finished(started.body.id as string, key);
    expect(run.summary).toEqual({ succeeded: 3, denied: 2 });
    expect(run.vms.filter((v) => v.state === 'denied').map((v) => v.vm_id)).toEqual([
      'vm-4',
      'vm-5',
    ]);
    const denials = (await api('GET', '/api/audit/events?kind=denied&actor=op-a')).body
      .events as unknown[];
    expect(denials.length).toBeGreaterThanOrEqual(2);
    const bad = await api('POST', '/api/runs', { target: { labels: 'env' }, command: 'true' });
    expect(bad.status).toBe(400);
    expect(String(bad.body.message)).toContain('key=value');
    appendFileSync(join(work, 'done'), '');
  }, 30_000);
});
