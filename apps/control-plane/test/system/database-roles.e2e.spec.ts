// Issue 18 item 4 (acceptance 3): least-privilege database roles. Migrations run as an owner
// role (DATABASE_MIGRATION_URL); the control plane runs as a role granted only what replicas
// need, so it cannot DELETE, UPDATE, TRUNCATE or disable the triggers of the audit tables, each
// attempt failing with a permission error, while every API path still works. A PostgreSQL
// cluster of the test's own (roles are cluster-wide), a real nats-server and control plane.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import {
  adminFetch,
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { startPgCluster, type PgCluster } from '../../../../test/support/pg-cluster.js';

const AUDIT_TABLES = ['audit_events', 'audit_outputs', 'audit_checkpoints'];
const INSUFFICIENT_PRIVILEGE = '42501';

describe('least-privilege database roles', () => {
  let cluster: PgCluster;
  let nats: RunningNats;
  let cp: RunningControlPlane;

  async function as<T>(user: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: cluster.url('lq', user) });
    await c.connect();
    try {
      return await work(c);
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    [cluster, nats] = await Promise.all([startPgCluster(), startNatsServer()]);
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    await admin.connect();
    try {
      await admin.query(`DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lq_owner') THEN
          CREATE ROLE lq_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lq_app') THEN
          CREATE ROLE lq_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; END $$`);
      await admin.query('CREATE DATABASE lq OWNER lq_owner');
    } finally {
      await admin.end();
    }
    cp = await startControlPlaneProcess({
      databaseUrl: cluster.url('lq', 'lq_app'),
      natsUrl: nats.url,
      env: {
        DATABASE_MIGRATION_URL: cluster.url('lq', 'lq_owner'),
        LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE: 'true',
        LQ_AUDIT_CHECKPOINT_ROWS: '2',
        LQ_AUDIT_CHECKPOINT_INTERVAL_MS: '300',
      },
    });
  });

  afterAll(async () => {
    await cp?.stop();
    await nats?.stop();
    cluster?.destroy();
  });

  it('should serve through the runtime role: users, keys, audit rows, checkpoints, verify', async () => {
    for (const name of ['alice', 'bob', 'carol']) {
      const res = await adminFetch(`${cp.url}/api/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: name }),
      });
      expect(res.status).toBe(201);
    }
    const deadline = Date.now() + 30_000;
    let report: { ok?: boolean; checkpoint?: { seq: number } | null; last_seq?: number } = {};
    while (Date.now() < deadline) {
      report = (await (await adminFetch(`${cp.url}/api/audit/verify`)).json()) as typeof report;
      if (report.checkpoint && report.checkpoint.seq === report.last_seq) {
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(report).toMatchObject({ ok: true, checkpoint: { seq: report.last_seq } });
    const owners = await as('postgres', (c) =>
      c.query<{ relname: string; owner: string }>(
        `SELECT relname, pg_get_userbyid(relowner) AS owner FROM pg_class
         WHERE relname = ANY($1)`,
        [AUDIT_TABLES],
      ),
    );
    expect(owners.rows.map((r) => r.owner)).toEqual(['lq_owner', 'lq_owner', 'lq_owner']);
  });

  it.each(AUDIT_TABLES)(
    'should refuse DELETE, UPDATE, TRUNCATE and DISABLE TRIGGER on %s to the runtime role',
    async (table) => {
      const column = table === 'audit_outputs' ? 'stdout_truncated = true' : 'seq = seq';
      await as('lq_app', async (c) => {
        for (const sql of [
          `DELETE FROM ${table}`,
          `UPDATE ${table} SET ${column}`,
          `TRUNCATE ${table}`,
          `ALTER TABLE ${table} DISABLE TRIGGER USER`,
          `ALTER TABLE ${table} DISABLE TRIGGER ALL`,
        ]) {
          const err = await c.query(sql).then(
            () => undefined,
            (e: { code?: string; message: string }) => e,
          );
          expect({ sql, code: err?.code }).toEqual({ sql, code: INSUFFICIENT_PRIVILEGE });
          expect(err?.message).toMatch(/permission denied|must be owner/);
        }
        // Reading and appending stay possible: that is what the replicas do.
        await expect(c.query(`SELECT count(*) FROM ${table}`)).resolves.toBeDefined();
      });
    },
  );

  it('should refuse to start as a role that owns the audit tables when least privilege is required', async () => {
    await expect(
      startControlPlaneProcess({
        databaseUrl: cluster.url('lq', 'lq_owner'),
        natsUrl: nats.url,
        env: { LQ_DATABASE_REQUIRE_LEAST_PRIVILEGE: 'true' },
      }),
    ).rejects.toThrow(/lq_owner owns audit_/);
  });

  it('should refuse a migration URL with the same user as DATABASE_URL', async () => {
    await expect(
      startControlPlaneProcess({
        databaseUrl: cluster.url('lq', 'lq_app'),
        natsUrl: nats.url,
        env: { DATABASE_MIGRATION_URL: cluster.url('lq', 'lq_app') },
      }),
    ).rejects.toThrow(/DATABASE_MIGRATION_URL has the same user/);
  });
});
