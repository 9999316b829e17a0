// Issue 18 item 3 (acceptance 2): signed checkpoints of the audit chain head make rows cut off
// the end, and a rebuilt table, visible. A real control plane on a real PostgreSQL and a real
// nats-server with JetStream: a superuser deletes the last 5 rows with the triggers disabled,
// /api/audit/verify names the gap after the last checkpoint (from JetStream, even when the
// checkpoint table is emptied too); an export checked offline by the bundled lqctl detects an
// edited row; the stream refuses to be purged, and the control plane's NATS user may not delete
// it.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-return */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import {
  AUDIT_CHECKPOINT_STREAM,
  CONTROL_PLANE_PASSWORD_VAR,
  CONTROL_PLANE_USER,
  renderAuthConf,
} from '../../../../deploy/nats/render-nats-conf.mjs';
import {
  TEST_ADMIN_TOKEN,
  adminFetch,
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';

const LQCTL = resolve('dist/lqctl/lqctl.cjs');
const STREAM = AUDIT_CHECKPOINT_STREAM;
const NATS_PASSWORD = 'cp-checkpoint-secret';

function lqctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [LQCTL, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('audit checkpoints', () => {
  let db: TestDatabase;
  let nats: RunningNats;
  let cp: RunningControlPlane;
  let work: string;
  let publicKey: string;
  let auditorToken: string;

  const api = async (path: string, token = TEST_ADMIN_TOKEN) => {
    const res = await fetch(`${cp.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    const text = await res.text();
    let body: any = {};
    try {
      body = JSON.parse(text);
    } catch {
      // ndjson
    }
    return { status: res.status, body, text };
  };

  async function superuser<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      return await work(c);
    } finally {
      await c.end();
    }
  }

  /** Admin acts, each an audit row. */
  async function writeRows(n: number, tag: string) {
    for (let i = 0; i < n; i++) {
      const res = await adminFetch(`${cp.url}/api/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: `${tag}-${i}` }),
      });
      expect(res.status).toBe(201);
    }
  }

  /** Waits until the latest checkpoint (from JetStream) covers the head. */
  async function waitForCheckpointAtHead() {
    const deadline = Date.now() + 30_000;
    let last: any;
    while (Date.now() < deadline) {
      last = (await api('/api/audit/verify')).body;
      if (last.checkpoint?.source === 'jetstream' && last.checkpoint.seq === last.last_seq) {
        return last;
      }
      await sleep(200);
    }
    throw new Error(`no checkpoint of the head in JetStream: ${JSON.stringify(last)}`);
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-checkpoints-'));
    // The deployment's NATS authorization (deploy/nats/auth.conf), with JetStream.
    [db, nats] = await Promise.all([
      createTestDatabase('lq_checkpoints'),
      startNatsServer({
        jetstream: true,
        config: 'include ./auth.conf\n',
        files: { 'auth.conf': renderAuthConf(['node-1']) },
        env: {
          [CONTROL_PLANE_PASSWORD_VAR]: NATS_PASSWORD,
          LQ_NATS_PASSWORD_NODE_NODE_1: 'node-secret',
        },
      }),
    ]);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: {
        NATS_USER: CONTROL_PLANE_USER,
        NATS_PASSWORD,
        LQ_AUDIT_CHECKPOINT_ROWS: '5',
        LQ_AUDIT_CHECKPOINT_INTERVAL_MS: '300',
        LQ_AUDIT_CHECKPOINT_JETSTREAM: 'required',
      },
    });
    publicKey = (await api('/api/audit/public-key')).body.public_key;
    await writeRows(12, 'first');
    // An auditor of one project only: the export and verify span every project.
    await adminFetch(`${cp.url}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'proj-auditor' }),
    });
    await adminFetch(`${cp.url}/api/role-bindings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'proj-auditor', role: 'auditor', project: 'default' }),
    });
    const key = await adminFetch(`${cp.url}/api/users/proj-auditor/api-keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'test' }),
    });
    auditorToken = ((await key.json()) as { token: string }).token;
  });

  afterAll(async () => {
    await cp?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should serve the public key without a sign-in and print it at start', async () => {
    const res = await fetch(`${cp.url}/api/audit/public-key`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { key_id: string; public_key: string; algorithm: string };
    expect(body).toMatchObject({
      algorithm: 'Ed25519',
      key_id: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(Buffer.from(body.public_key, 'base64')).toHaveLength(32);
    expect(cp.output()).toContain(body.public_key);
  });

  it('should refuse the export and the verify to an auditor of one project, and audit it', async () => {
    for (const path of ['/api/audit/export', '/api/audit/verify']) {
      const res = await api(path, auditorToken);
      expect(res.status).toBe(403);
      expect(res.body.message).toMatch(/audit\.read/);
    }
    const deadline = Date.now() + 15_000;
    let denied: any[] = [];
    while (Date.now() < deadline && denied.length < 2) {
      const events = await api('/api/audit/events?kind=denied&actor=proj-auditor');
      denied = events.body.events ?? [];
      await sleep(100);
    }
    expect(denied.map((e) => e.operation).sort()).toEqual([
      'GET /api/audit/export',
      'GET /api/audit/verify',
    ]);
  });

  it('should verify an intact chain up to a checkpoint kept in JetStream', async () => {
    const report = await waitForCheckpointAtHead();
    expect(report).toMatchObject({ ok: true, checkpoints_unknown_key: 0 });
    expect(report.checkpoints_checked).toBeGreaterThan(1);
    expect(report.first_broken).toBeUndefined();
  });

  it('should stream progress lines and the report when asked', async () => {
    const res = await api('/api/audit/verify?progress=true');
    expect(res.status).toBe(200);
    const lines = res.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].progress.rows).toBeGreaterThan(0);
    expect(lines.at(-1).report).toMatchObject({ ok: true });
  });

  it('should check an export offline with lqctl, and find an edited row in it', async () => {
    const res = await api('/api/audit/export');
    expect(res.status).toBe(200);
    const file = join(work, 'export.ndjson');
    writeFileSync(file, res.text);
    const good = await lqctl(['audit', 'verify', file, '--public-key', publicKey]);
    expect(good.stderr).toBe('');
    expect(good.stdout).toMatch(/^intact: /);
    expect(good.code).toBe(0);

    // Edit one row's actor: its hash no longer matches.
    const lines = res.text.trim().split('\n');
    const i = lines.findIndex((l) => l.includes('"type":"event"') && l.includes('"seq":4,'));
    const row = JSON.parse(lines[i]!);
    lines[i] = JSON.stringify({ ...row, actor: 'someone-else' });
    const edited = join(work, 'edited.ndjson');
    writeFileSync(edited, `${lines.join('\n')}\n`);
    const bad = await lqctl(['audit', 'verify', edited, '--public-key', publicKey]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/first broken row: 4: content changed/);

    // Cut the last rows off the file (end line kept): the signed checkpoint says they existed.
    const original = res.text.trim().split('\n');
    const eventLines = original.flatMap((l, n) => (l.includes('"type":"event"') ? [n] : []));
    const drop = new Set(eventLines.slice(-3));
    writeFileSync(edited, `${original.filter((_, n) => !drop.has(n)).join('\n')}\n`);
    const cutRun = await lqctl(['audit', 'verify', edited, '--public-key', publicKey]);
    expect(cutRun.code).toBe(1);
    expect(cutRun.stdout).toMatch(/are missing/);

    // Another key: every checkpoint is unusable, and the tool says so.
    const otherKey = Buffer.alloc(32, 7).toString('base64');
    const other = await lqctl(['audit', 'verify', file, '--public-key', otherKey]);
    expect(other.stdout).toMatch(/signed by another key were not used/);
  });

  it('should refuse a purge of the checkpoint stream, even to a NATS user allowed to ask', async () => {
    // The control plane's own credentials: the deployment does not let it purge or delete.
    const nc: NatsConnection = await connect({
      servers: nats.url,
      user: CONTROL_PLANE_USER,
      pass: NATS_PASSWORD,
    });
    try {
      for (const api of [`PURGE.${STREAM}`, `DELETE.${STREAM}`, `MSG.DELETE.${STREAM}`]) {
        await expect(
          nc.request(`$JS.API.STREAM.${api}`, JSON.stringify({ seq: 1 }), { timeout: 3000 }),
        ).rejects.toThrow(/permission|Permissions/i);
      }
    } finally {
      await nc.close();
    }
    // A user with every permission: the stream itself refuses purge and message deletion.
    const admin = await startNatsServer({ jetstream: true });
    try {
      const nc2 = await connect({ servers: admin.url });
      const create = await nc2.request(
        `$JS.API.STREAM.CREATE.T`,
        JSON.stringify({
          name: 'T',
          subjects: ['t'],
          deny_delete: true,
          deny_purge: true,
          storage: 'file',
        }),
      );
      expect(JSON.parse(create.string()).error).toBeUndefined();
      await nc2.request('t', 'x');
      const purge = JSON.parse((await nc2.request('$JS.API.STREAM.PURGE.T', '')).string());
      expect(purge.error?.description).toMatch(/purge/i);
      const del = JSON.parse(
        (await nc2.request('$JS.API.STREAM.MSG.DELETE.T', JSON.stringify({ seq: 1 }))).string(),
      );
      expect(del.error?.description).toMatch(/delete/i);
      await nc2.close();
    } finally {
      await admin.stop();
    }
  });

  it('should name the gap after the last checkpoint when a superuser deletes the last 5 rows', async () => {
    const before = await waitForCheckpointAtHead();
    const last = before.last_seq as number;
    await superuser(async (c) => {
      await c.query('BEGIN');
      await c.query('SET LOCAL session_replication_role = replica'); // triggers off
      await c.query('DELETE FROM audit_events WHERE seq > $1', [last - 5]);
      await c.query('COMMIT');
    });
    const after = (await api('/api/audit/verify')).body;
    expect(after.ok).toBe(false);
    expect(after.last_seq).toBe(last - 5);
    expect(after.first_broken).toMatchObject({ seq: last - 4 });
    expect(after.first_broken.reason).toMatch(
      new RegExp(`rows ${last - 4}\\.\\.${last} are missing`),
    );

    // The checkpoint table emptied too: the stream still has the head.
    await superuser(async (c) => {
      await c.query('BEGIN');
      await c.query('SET LOCAL session_replication_role = replica');
      await c.query('DELETE FROM audit_checkpoints');
      await c.query('COMMIT');
    });
    const again = (await api('/api/audit/verify')).body;
    expect(again.ok).toBe(false);
    expect(again.checkpoint).toMatchObject({ source: 'jetstream', seq: last });
    expect(again.first_broken).toMatchObject({ seq: last - 4 });

    // New rows do not hide the gap, and no checkpoint is signed over it.
    await writeRows(8, 'after');
    await sleep(1000);
    const later = (await api('/api/audit/verify')).body;
    expect(later.ok).toBe(false);
    expect(later.checkpoint.seq).toBe(last);
    expect(later.first_broken.seq).toBeLessThanOrEqual(last - 4);
    expect(cp.output()).toMatch(/no checkpoint is signed until this is resolved/);
  });
});
