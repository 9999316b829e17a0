// Issue 18 item 8: an execution or a fleet run whose control-plane replica died is adopted by
// another replica and finished with the agent's real result, instead of ending `failed`. Two real
// control planes share a real PostgreSQL and nats-server; the one that started an execution that
// is still running, an execution that ends while no replica listens (its reply is lost with the
// dead replica: the node daemon's retained reply answers the adopter), and a fleet run with VMs
// not started yet is killed with SIGKILL. The other finishes them all: real exit codes and output,
// each command run exactly once (each appends to a file), exactly one audit outcome per intent.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { startSimVms, type SimVms } from '../support/sim-vms.js';
import { startNodeDaemon, type RunningNodeDaemon } from '../support/node-daemon-process.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  adminFetch,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../support/control-plane-process.js';

const VMS = 4;
// Short leases, so the survivor adopts within seconds.
const CP_ENV = { LQ_LEASE_MS: '2000' };

describe('a replica killed mid-flight: another adopts its executions and runs', () => {
  let work: string;
  let nats: RunningNats;
  let db: TestDatabase;
  let sim: SimVms;
  let daemon: RunningNodeDaemon;
  let doomed: RunningControlPlane;
  let survivor: RunningControlPlane;

  const api = async (cp: RunningControlPlane, method: string, path: string, body?: unknown) => {
    const res = await adminFetch(`${cp.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** Polls through the survivor until `path`'s status is no longer running. */
  const ended = async (path: string) => {
    for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(250)) {
      const r = await api(survivor, 'GET', path);
      if (r.status === 200 && r.body.status !== 'running' && r.body.status !== 'pending') {
        return r.body;
      }
    }
    throw new Error(`${path} still running after 90 s`);
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-adopt-'));
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_adopt')]);
    sim = await startSimVms({ dir: work, count: VMS, prefix: 'vm-' });
    doomed = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: CP_ENV,
    });
    survivor = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: CP_ENV,
    });
    daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
    await waitForReadyVms(doomed.url, VMS, { timeoutMs: 90_000 });
  }, 180_000);

  afterAll(async () => {
    await survivor?.stop();
    await doomed?.stop();
    await daemon?.stop();
    await sim?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should finish them on the survivor with the real results, each run once, one outcome per intent', async () => {
    const mark = (name: string) => `echo ran >> ${join(work, name)}`;
    // Still running when adopted: the adopter attaches to it.
    const long = await api(doomed, 'POST', '/api/vms/vm-1/executions', {
      command: `${mark('long')}; echo first; sleep 6; echo adopted-output; exit 3`,
    });
    // Ends while no replica listens: its reply dies with the replica that asked.
    const short = await api(doomed, 'POST', '/api/vms/vm-2/executions', {
      command: `${mark('short')}; sleep 1; echo short-done`,
    });
    // One VM at a time: the second is started by the survivor.
    const run = await api(doomed, 'POST', '/api/runs', {
      target: { vm_ids: ['vm-3', 'vm-4'] },
      command: `${mark('run')}; sleep 3`,
      max_concurrency: 1,
    });
    // A run whose caller is disabled before its replica dies: the survivor starts nothing more
    // for them (the VM under way is followed to its end), and the run ends `stopped`.
    await api(doomed, 'POST', '/api/users', { username: 'leaver' });
    await api(doomed, 'POST', '/api/role-bindings', { user: 'leaver', role: 'operator' });
    const key = await api(doomed, 'POST', '/api/users/leaver/api-keys', {});
    const left = await fetch(`${doomed.url}/api/runs`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key.body.token as string}` },
      body: JSON.stringify({
        target: { vm_ids: ['vm-3', 'vm-4'] },
        command: `${mark('leaver')}; sleep 3`,
        max_concurrency: 1,
      }),
    });
    const leftRun = (await left.json()) as Record<string, unknown>;
    expect([long.status, short.status, run.status, left.status]).toEqual([202, 202, 202, 202]);
    await sleep(500);
    const disabled = await api(survivor, 'PATCH', '/api/users/leaver', { disabled: true });
    expect(disabled.status).toBe(200);
    doomed.proc.kill('SIGKILL');

    const a = await ended(`/api/executions/${long.body.id as string}`);
    expect(a).toMatchObject({ status: 'failed', exit_code: 3 });
    const b = await ended(`/api/executions/${short.body.id as string}`);
    expect(b).toMatchObject({ status: 'succeeded', exit_code: 0 });
    const r = await ended(`/api/runs/${run.body.id as string}`);
    expect(r.status).toBe('succeeded');
    expect(r.summary).toEqual({ succeeded: 2 });

    const l = await ended(`/api/runs/${leftRun.id as string}`);
    expect(l.status).toBe('stopped');
    const vms = l.vms as Array<{ vm_id: string; state: string; error: string | null }>;
    expect(vms.map((t) => t.state).sort()).toEqual(['skipped', 'succeeded']);
    expect(vms.find((t) => t.state === 'skipped')?.error).toContain('leaver is gone or disabled');

    // Output written after the adoption is stored by the survivor.
    const out = await api(survivor, 'GET', `/api/executions/${long.body.id as string}/output`);
    const text = (out.body.chunks as Array<{ text: string }>).map((c) => c.text).join('');
    expect(text).toContain('first');
    expect(text).toContain('adopted-output');

    // Nothing ran twice.
    expect(readFileSync(join(work, 'long'), 'utf8')).toBe('ran\n');
    expect(readFileSync(join(work, 'short'), 'utf8')).toBe('ran\n');
    expect(readFileSync(join(work, 'run'), 'utf8')).toBe('ran\nran\n');
    expect(readFileSync(join(work, 'leaver'), 'utf8')).toBe('ran\n');

    // Exactly one outcome per intent, the executions' with their real status.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      for (let settled = false, deadline = Date.now() + 30_000; !settled; await sleep(250)) {
        const { rows } = await c.query<{ request_id: string; outcomes: number }>(
          `SELECT i.request_id, (SELECT count(*)::int FROM audit_events o
                                 WHERE o.kind = 'outcome' AND o.request_id = i.request_id)
                                 AS outcomes
           FROM audit_events i WHERE i.kind = 'intent'`,
        );
        settled = rows.every((x) => x.outcomes === 1);
        if (!settled && Date.now() > deadline) {
          expect(rows.filter((x) => x.outcomes !== 1)).toEqual([]);
        }
      }
      const { rows } = await c.query<{ request_id: string; status: string; exit_code: number }>(
        `SELECT request_id, status, exit_code FROM audit_events
         WHERE kind = 'outcome' AND request_id = ANY($1::uuid[])`,
        [[long.body.id, short.body.id]],
      );
      expect(Object.fromEntries(rows.map((x) => [x.request_id, [x.status, x.exit_code]]))).toEqual({
        [long.body.id as string]: ['failed', 3],
        [short.body.id as string]: ['ok', 0],
      });
      const runOutcome = await c.query<{ status: string }>(
        `SELECT o.status FROM audit_events o JOIN audit_events i
           ON i.request_id = o.request_id AND i.kind = 'intent' AND i.operation = 'run'
         WHERE o.kind = 'outcome' AND o.params->>'run_id' = $1`,
        [run.body.id],
      );
      expect(runOutcome.rows).toEqual([{ status: 'succeeded' }]);
    } finally {
      await c.end();
    }
    const verify = await api(survivor, 'GET', '/api/audit/verify');
    expect(verify.body.ok).toBe(true);
  }, 180_000);
});
