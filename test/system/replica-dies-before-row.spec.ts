// Issue 18 items 8 and 11: a control-plane replica that dies after writing an asynchronous
// execution's audit intent and before recording the execution (ExecutionsService.start) sent
// nothing to the guest, and no replica would ever write that intent's outcome. Two real control
// planes share a real PostgreSQL and nats-server; the test holds a lock on the executions table
// so the doomed replica's INSERT waits, kills the replica with SIGKILL once its intent is written,
// and ends its waiting INSERT (as if it never reached the database). The survivor closes the
// intent: exactly one outcome, the execution recorded `failed` (never started), nothing run.
// The same for a fleet run killed between its intent and its run row (RunsService.create).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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

// Short leases: an intent without its execution is closed once older than one.
const CP_ENV = { LQ_LEASE_MS: '2000' };

describe('a replica killed between an execution’s intent and its row', () => {
  let work: string;
  let nats: RunningNats;
  let db: TestDatabase;
  let sim: SimVms;
  let daemon: RunningNodeDaemon;
  let doomed: RunningControlPlane;
  let survivor: RunningControlPlane;
  let sql: pg.Client;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-norow-'));
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_norow')]);
    sim = await startSimVms({ dir: work, count: 1, prefix: 'vm-' });
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
    await waitForReadyVms(doomed.url, 1, { timeoutMs: 90_000 });
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  }, 180_000);

  afterAll(async () => {
    await sql?.end().catch(() => undefined);
    await survivor?.stop();
    await doomed?.stop();
    await daemon?.stop();
    await sim?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should give the intent exactly one outcome, record the execution failed, and run nothing', async () => {
    const marker = join(work, 'ran');
    const intentOf = async () =>
      (
        await sql.query<{ request_id: string }>(
          `SELECT request_id FROM audit_events
           WHERE kind = 'intent' AND operation = 'execute' AND params->>'command' LIKE $1`,
          [`%${marker}%`],
        )
      ).rows[0]?.request_id;

    await sql.query('BEGIN');
    await sql.query('LOCK TABLE executions IN SHARE ROW EXCLUSIVE MODE');
    const started = adminFetch(`${doomed.url}/api/vms/vm-1/executions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: `touch ${marker}` }),
    }).catch(() => undefined);
    let requestId: string | undefined;
    for (const deadline = Date.now() + 60_000; !requestId && Date.now() < deadline;) {
      await sleep(100);
      // Another connection: the audit writer commits the intent outside this transaction.
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      requestId = (
        await c.query<{ request_id: string }>(
          `SELECT request_id FROM audit_events
           WHERE kind = 'intent' AND operation = 'execute' AND params->>'command' LIKE $1`,
          [`%${marker}%`],
        )
      ).rows[0]?.request_id;
      await c.end();
    }
    expect(requestId).toBeDefined();
    doomed.proc.kill('SIGKILL');
    await started;
    // Its INSERT, still waiting for the lock, never reaches the table.
    await sql.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()
         AND query LIKE 'INSERT INTO executions%'`,
    );
    await sql.query('ROLLBACK');
    expect(await intentOf()).toBe(requestId);

    let outcomes: Array<{ status: string; error: string }> = [];
    for (const deadline = Date.now() + 90_000; outcomes.length === 0 && Date.now() < deadline;) {
      await sleep(500);
      outcomes = (
        await sql.query<{ status: string; error: string }>(
          `SELECT status, error FROM audit_events WHERE kind = 'outcome' AND request_id = $1`,
          [requestId],
        )
      ).rows;
    }
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.status).toBe('failed');
    expect(outcomes[0]!.error).toMatch(/not started: its control plane stopped/);
    const execution = await adminFetch(`${survivor.url}/api/executions/${requestId}`);
    expect(execution.status).toBe(200);
    expect(await execution.json()).toMatchObject({ status: 'failed' });
    // Nothing was sent, and a later sweep writes no second outcome.
    await sleep(12_000);
    const { rows } = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE kind = 'outcome' AND request_id = $1`,
      [requestId],
    );
    expect(rows[0]!.n).toBe(1);
    expect(existsSync(marker)).toBe(false);
  }, 240_000);

  it('should close a fleet run whose replica died between its intent and its row: one outcome, the run failed, no VM started', async () => {
    const doomedRun = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: CP_ENV,
    });
    const marker = join(work, 'run-ran');
    const intentOfRun = async (c: pg.Client) =>
      (
        await c.query<{ request_id: string; run_id: string }>(
          `SELECT request_id, params->>'run_id' AS run_id FROM audit_events
           WHERE kind = 'intent' AND operation = 'run' AND params->>'command' LIKE $1`,
          [`%${marker}%`],
        )
      ).rows[0];
    await sql.query('BEGIN');
    await sql.query('LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE');
    const started = adminFetch(`${doomedRun.url}/api/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: { vm_ids: ['vm-1'] }, command: `touch ${marker}` }),
    }).catch(() => undefined);
    let intent: { request_id: string; run_id: string } | undefined;
    for (const deadline = Date.now() + 60_000; !intent && Date.now() < deadline;) {
      await sleep(100);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      intent = await intentOfRun(c);
      await c.end();
    }
    expect(intent).toBeDefined();
    doomedRun.proc.kill('SIGKILL');
    await started;
    await sql.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()
         AND query LIKE 'INSERT INTO runs%'`,
    );
    await sql.query('ROLLBACK');
    await doomedRun.stop();

    // The runs sweep runs every 30 s.
    let outcomes: Array<{ status: string; error: string }> = [];
    for (const deadline = Date.now() + 120_000; outcomes.length === 0 && Date.now() < deadline;) {
      await sleep(500);
      outcomes = (
        await sql.query<{ status: string; error: string }>(
          `SELECT status, error FROM audit_events WHERE kind = 'outcome' AND request_id = $1`,
          [intent!.request_id],
        )
      ).rows;
    }
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.status).toBe('failed');
    expect(outcomes[0]!.error).toMatch(/not started: its control plane stopped/);
    const run = await adminFetch(`${survivor.url}/api/runs/${intent!.run_id}`);
    expect(run.status).toBe(200);
    expect(await run.json()).toMatchObject({ status: 'failed' });
    expect(existsSync(marker)).toBe(false);
  }, 240_000);
});
