// System tests of authentication, authorization and the audit trail (issue 5): a PostgreSQL
// cluster of the test's own (so it can be stopped), the control plane connected as a
// non-superuser application role, a real nats-server, a node daemon and real guest agents.
// The test reads the API's JSON loosely (any) and lets the assertions check its shape.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SignJWT } from 'jose';
import pg from 'pg';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { startSimVms, type SimVms } from '../../../../test/support/sim-vms.js';
import {
  startNodeDaemon,
  type RunningNodeDaemon,
} from '../../../../test/support/node-daemon-process.js';
import {
  TEST_ADMIN_TOKEN,
  startControlPlaneProcess,
  waitForReadyVms,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';
import {
  createAppDatabase,
  startPgCluster,
  type PgCluster,
} from '../../../../test/support/pg-cluster.js';

const JWT_SECRET = 'test-jwt-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const USER_PASSWORD = 'Correct-Horse-Battery-9871';
const ENV_SECRET = 'hunter2-env-secret-value';
const MARKED_SECRET = 'marked-secret-value-5521';
const STDIN_SECRET = 'stdin-secret-value-7730';

interface Reply {
  status: number;
  body: Record<string, any>;
  text: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('authentication, authorization and audit trail', () => {
  let work: string;
  let cluster: PgCluster;
  let appUrl: string;
  let nats: RunningNats;
  let sim: SimVms;
  let daemon: RunningNodeDaemon;
  let cp: RunningControlPlane;
  const tokens: Record<string, string> = { admin: TEST_ADMIN_TOKEN };

  async function call(
    who: string | undefined,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (who !== undefined) {
      headers.Authorization = `Bearer ${tokens[who] ?? who}`;
    }
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${cp.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: Record<string, any> = {};
    try {
      parsed = JSON.parse(text) as Record<string, any>;
    } catch {
      // ndjson, csv
    }
    return { status: res.status, body: parsed, text };
  }

  const exec = (who: string, vm: string, body: Record<string, unknown>) =>
    call(who, 'POST', `/api/vms/${vm}/execute`, body);

  async function superuser<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ connectionString: cluster.url('lq_audit') });
    await c.connect();
    try {
      return await work(c);
    } finally {
      await c.end();
    }
  }

  /** An API key for a new user with the given bindings. */
  async function userWith(
    name: string,
    bindings: Array<{ role: string; project?: string; restrictions?: object }>,
    password?: string,
  ): Promise<void> {
    expect((await call('admin', 'POST', '/api/users', { username: name, password })).status).toBe(
      201,
    );
    for (const b of bindings) {
      const r = await call('admin', 'POST', '/api/role-bindings', { user: name, ...b });
      expect(r.status).toBe(201);
    }
    const key = await call('admin', 'POST', `/api/users/${name}/api-keys`, { name: 'test' });
    expect(key.status).toBe(201);
    tokens[name] = key.body.token as string;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-audit-'));
    [cluster, nats, sim] = await Promise.all([
      startPgCluster(),
      startNatsServer(),
      startSimVms({ dir: work, count: 2, prefix: 'vm-' }),
    ]);
    appUrl = await createAppDatabase(cluster.url(), 'lq_audit', 'lq_app');
    cp = await startControlPlaneProcess({
      databaseUrl: appUrl,
      natsUrl: nats.url,
      env: {
        LQ_JWT_SECRET: JWT_SECRET,
        LQ_AUDIT_WRITE_TIMEOUT_MS: '1500',
        LQ_AUDIT_RETRY_MS: '200',
        LQ_PASSWORD_SCRYPT_LOG_N: '12',
      },
    });
    daemon = await startNodeDaemon({ nodeId: 'node-1', natsUrl: nats.url, channelDirs: [work] });
    await waitForReadyVms(cp.url, 2);
    for (const [project, vm] of [
      ['proj-a', 'vm-1'],
      ['proj-b', 'vm-2'],
    ]) {
      expect((await call('admin', 'POST', '/api/projects', { id: project })).status).toBe(201);
      const moved = await call('admin', 'PUT', `/api/vms/${vm}/project`, { project });
      expect(moved.status).toBe(200);
    }
    await userWith('op-a', [{ role: 'operator', project: 'proj-a' }], USER_PASSWORD);
    await userWith('viewer', [{ role: 'viewer' }]);
    await userWith('auditor', [{ role: 'auditor' }]);
    await userWith('op-limited', [
      { role: 'operator', project: 'proj-a', restrictions: { exec_non_root: true } },
    ]);
  });

  afterAll(async () => {
    if (process.env.LQ_TEST_DUMP) {
      process.stderr.write(`--- cp ---\n${cp?.output()}\n`);
    }
    await cp?.stop();
    await daemon?.stop();
    await sim?.stop();
    await nats?.stop();
    cluster?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  describe('authentication', () => {
    it('should answer 401 without a token, and audit the attempt', async () => {
      const r = await call(undefined, 'GET', '/api/vms');
      expect(r.status).toBe(401);
      expect(r.body.code).toBe('UNAUTHENTICATED');
      const failed = await call('auditor', 'GET', '/api/audit/events?kind=auth_failed');
      expect(failed.body.events.some((e: any) => e.operation === 'GET /api/vms')).toBe(true);
    });

    it('should sign in with a password, use the access token, and refresh it once', async () => {
      const login = await call(undefined, 'POST', '/api/auth/login', {
        username: 'op-a',
        password: USER_PASSWORD,
      });
      expect(login.status).toBe(200);
      const me = await call(login.body.access_token, 'GET', '/api/auth/me');
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ username: 'op-a', auth_method: 'jwt', api_key: null });
      expect(me.body.permissions['guest.exec']).toEqual(['proj-a']);
      // Each binding says what its role grants: the console needs no copy of the roles.
      expect(me.body.bindings).toEqual([
        {
          role: 'operator',
          project: 'proj-a',
          restrictions: {},
          permissions: [
            'vm.read',
            'guest.exec',
            'guest.file.read',
            'guest.file.write',
            'guest.power',
            'guest.quiesce',
            'guest.time',
            'guest.password',
            'guest.agent.update',
            'guest.network.configure',
          ],
        },
      ]);
      const refreshed = await call(undefined, 'POST', '/api/auth/refresh', {
        refresh_token: login.body.refresh_token,
      });
      expect(refreshed.status).toBe(200);
      const reused = await call(undefined, 'POST', '/api/auth/refresh', {
        refresh_token: login.body.refresh_token,
      });
      expect(reused.status).toBe(401);
      const wrong = await call(undefined, 'POST', '/api/auth/login', {
        username: 'op-a',
        password: 'not-the-password',
      });
      expect(wrong.status).toBe(401);
    });

    it('should answer 401 to an expired or a tampered JWT', async () => {
      const me = (await call('admin', 'GET', '/api/auth/me')).body;
      const key = new TextEncoder().encode(JWT_SECRET);
      const past = Math.floor(Date.now() / 1000) - 3600;
      const expired = await new SignJWT({ name: 'admin', typ: 'access' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(me.user_id)
        .setIssuer('limiquantix')
        .setAudience('limiquantix-api')
        .setIssuedAt(past - 900)
        .setExpirationTime(past)
        .sign(key);
      const r1 = await call(expired, 'GET', '/api/vms');
      expect(r1.status).toBe(401);
      expect(r1.body.message).toContain('expired');

      const login = await call(undefined, 'POST', '/api/auth/login', {
        username: 'op-a',
        password: USER_PASSWORD,
      });
      const [h, p, s] = (login.body.access_token as string).split('.');
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
      claims.sub = me.user_id; // pretend to be the admin
      const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
      const r2 = await call(forged, 'GET', '/api/users');
      expect(r2.status).toBe(401);
      expect(r2.body.message).toContain('signature');
    });

    it('should answer 401 to a revoked API key', async () => {
      const key = await call('admin', 'POST', '/api/users/viewer/api-keys', { name: 'temp' });
      expect((await call(key.body.token, 'GET', '/api/vms')).status).toBe(200);
      expect((await call('admin', 'DELETE', `/api/api-keys/${key.body.id}`)).status).toBe(200);
      const r = await call(key.body.token, 'GET', '/api/vms');
      expect(r.status).toBe(401);
      expect(r.body.message).toContain('revoked');
    });

    it('should refuse a token in the URL, where logs and proxies keep it, and audit the attempt', async () => {
      const key = await call('admin', 'POST', '/api/users/viewer/api-keys', { name: 'in-url' });
      const r = await call(undefined, 'GET', `/api/vms?access_token=${key.body.token}`);
      expect(r.status).toBe(401);
      expect(r.body.message).toContain('Authorization: Bearer');
      // The same key in the header is fine: the refusal is of the place, not of the key.
      expect((await call(key.body.token, 'GET', '/api/vms')).status).toBe(200);
      const failed = await call('auditor', 'GET', '/api/audit/events?kind=auth_failed');
      expect(
        failed.body.events.some(
          (e: any) => e.operation === 'GET /api/vms' && /in the URL/.test(JSON.stringify(e)),
        ),
      ).toBe(true);
    });
  });

  describe('authorization', () => {
    it('should let an operator of project A exec on A’s VM and answer 403 on B’s', async () => {
      const ok = await exec('op-a', 'vm-1', { command: 'echo hello' });
      expect(ok.status).toBe(200);
      expect(ok.body.stdout).toBe('hello\n');
      const denied = await exec('op-a', 'vm-2', { command: 'echo hello' });
      expect(denied.status).toBe(403);
      expect(denied.body).toMatchObject({ code: 'PERMISSION_DENIED', permission: 'guest.exec' });
      expect(denied.body.message).toContain('proj-b');
      const list = await call('op-a', 'GET', '/api/vms');
      expect(list.body.vms.map((v: any) => v.id)).toEqual(['vm-1']);
    });

    it('should not let a viewer or an auditor exec, and let the auditor read history', async () => {
      for (const who of ['viewer', 'auditor']) {
        const r = await exec(who, 'vm-1', { command: 'id' });
        expect(r.status).toBe(403);
        expect(r.body.permission).toBe('guest.exec');
      }
      expect((await call('auditor', 'GET', '/api/audit/executions')).status).toBe(200);
      const viewerAudit = await call('viewer', 'GET', '/api/audit/executions');
      expect(viewerAudit.status).toBe(403);
      expect(viewerAudit.body.permission).toBe('audit.read');
      const denials = await call('auditor', 'GET', '/api/audit/events?kind=denied&actor=viewer');
      expect(denials.body.events.length).toBeGreaterThanOrEqual(2);
    });

    it('should hold an operator limited to non-root users to them', async () => {
      const root = await exec('op-limited', 'vm-1', { command: 'id -u' });
      expect(root.status).toBe(403);
      expect(root.body.message).toContain('non-root');
      const nobody = await exec('op-limited', 'vm-1', { command: 'id -un', run_as_user: 'nobody' });
      expect(nobody.status).toBe(200);
      expect(nobody.body.stdout).toBe('nobody\n');
    });

    it('should refuse the admin API to everyone but admins', async () => {
      const r = await call('op-a', 'POST', '/api/users', { username: 'eve' });
      expect(r.status).toBe(403);
      expect(r.body.permission).toBe('admin');
    });

    it('should answer a role binding with the username, whether the user was named by it or by its id', async () => {
      const user = await call('admin', 'POST', '/api/users', { username: 'bound-by-id' });
      expect(user.status).toBe(201);
      const byId = await call('admin', 'POST', '/api/role-bindings', {
        user: user.body.id,
        role: 'viewer',
        project: 'proj-a',
      });
      expect(byId.status).toBe(201);
      expect(byId.body).toMatchObject({ username: 'bound-by-id', role: 'viewer' });
      const byName = await call('admin', 'POST', '/api/role-bindings', {
        user: 'bound-by-id',
        role: 'viewer',
        project: 'proj-b',
      });
      expect(byName.body).toMatchObject({ username: 'bound-by-id' });
    });
  });

  describe('audit trail', () => {
    it('should record exactly one intent and one outcome per execution of 200 concurrent ones', async () => {
      const started = new Date();
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) => exec('op-a', 'vm-1', { command: `echo run-${i}` })),
      );
      expect(replies.map((r) => r.status)).toEqual(Array(200).fill(200));
      const rows = await superuser((c) =>
        c.query<{ kind: string; n: number }>(
          `SELECT kind, count(*)::int AS n FROM audit_events
           WHERE actor = 'op-a' AND operation = 'execute' AND at >= $1 GROUP BY kind`,
          [started],
        ),
      );
      expect(Object.fromEntries(rows.rows.map((r) => [r.kind, r.n]))).toEqual({
        intent: 200,
        outcome: 200,
      });
      // The output is audit.read_output's (admin here); an auditor reads the history without it.
      const query = `/api/audit/executions?actor=op-a&from=${started.toISOString()}&limit=1000`;
      const withheld = await call('auditor', 'GET', query);
      expect(withheld.body.executions).toHaveLength(200);
      expect(
        withheld.body.executions.every((e: any) => e.stdout === null && e.output_withheld),
      ).toBe(true);
      const history = await call('admin', 'GET', query);
      expect(history.body.executions).toHaveLength(200);
      for (const e of history.body.executions) {
        const n = /^echo run-(\d+)$/.exec(e.command)?.[1];
        expect(n).toBeDefined();
        expect(e.stdout).toBe(`run-${n}\n`);
        expect(e.stdout_sha256).toBe(sha256(`run-${n}\n`));
        expect(e).toMatchObject({
          status: 'ok',
          exit_code: 0,
          vm_id: 'vm-1',
          project_id: 'proj-a',
        });
      }
      const verify = await call('auditor', 'GET', '/api/audit/verify');
      expect(verify.body).toMatchObject({ ok: true });
    });

    it('should answer auditors by VM and time range, by actor, and export NDJSON and CSV', async () => {
      const from = new Date(Date.now() - 1000).toISOString();
      await exec('admin', 'vm-2', { command: 'echo on-two' });
      const to = new Date(Date.now() + 1000).toISOString();
      const byVm = await call(
        'auditor',
        'GET',
        `/api/audit/executions?vm_id=vm-2&from=${from}&to=${to}`,
      );
      expect(byVm.body.executions.map((e: any) => e.command)).toEqual(['echo on-two']);
      const byActor = await call('auditor', 'GET', '/api/audit/events?actor=op-limited&limit=5');
      expect(byActor.body.events.length).toBeGreaterThan(0);
      expect(byActor.body.events.every((e: any) => e.actor === 'op-limited')).toBe(true);

      const page1 = await call('auditor', 'GET', '/api/audit/events?operation=execute&limit=50');
      expect(page1.body.events).toHaveLength(50);
      const page2 = await call(
        'auditor',
        'GET',
        `/api/audit/events?operation=execute&limit=50&cursor=${page1.body.next_cursor}`,
      );
      expect(page2.body.events[0].seq).toBeLessThan(page1.body.events[49].seq);

      const ndjson = await call('auditor', 'GET', '/api/audit/executions?actor=op-a&format=ndjson');
      const lines = ndjson.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.length).toBeGreaterThanOrEqual(201);
      expect(lines.every((l) => l.actor === 'op-a')).toBe(true);
      const csv = await call('auditor', 'GET', '/api/audit/executions?vm_id=vm-2&format=csv');
      const [header, ...body] = csv.text.trim().split('\r\n');
      expect(header?.split(',').slice(0, 3)).toEqual(['seq', 'request_id', 'started_at']);
      expect(body.some((l) => l.includes('echo on-two'))).toBe(true);

      const bad = await call('auditor', 'GET', '/api/audit/events?from=yesterday');
      expect(bad.status).toBe(400);
      expect(bad.body.message).toContain('from');
    });

    it('should keep passwords and secrets out of every audit row and log line', async () => {
      await userWith('pw-user', [], 'Pw-User-Password-445566');
      const r = await exec('op-a', 'vm-1', {
        command: 'cat >/dev/null; echo done',
        env: { DB_PASSWORD: ENV_SECRET, PLAIN: MARKED_SECRET },
        secret_env: ['PLAIN'],
        stdin: STDIN_SECRET,
      });
      expect(r.status).toBe(200);
      const dump = await superuser(async (c) =>
        (await c.query('SELECT row_to_json(e)::text AS t FROM audit_events e')).rows
          .map((x: { t: string }) => x.t)
          .join('\n'),
      );
      for (const secret of [
        USER_PASSWORD,
        'Pw-User-Password-445566',
        ENV_SECRET,
        MARKED_SECRET,
        STDIN_SECRET,
      ]) {
        expect(dump).not.toContain(secret);
        expect(cp.output()).not.toContain(secret);
      }
      const intent = await call('auditor', 'GET', '/api/audit/executions?limit=1&actor=op-a');
      expect(intent.body.executions[0].params).toMatchObject({
        env: { DB_PASSWORD: '[redacted]', PLAIN: '[redacted]' },
        stdin: { sha256: sha256(STDIN_SECRET), bytes: STDIN_SECRET.length },
      });
    });

    it('should answer 503 and send nothing while PostgreSQL is down, and recover without restart', async () => {
      const marker = join(work, 'ran-while-db-down');
      // Warm the caches so the refusal comes from the audit write itself.
      expect((await exec('op-a', 'vm-1', { command: 'true' })).status).toBe(200);
      cluster.stop();
      try {
        const r = await exec('op-a', 'vm-1', { command: `touch ${marker}` });
        expect(r.status).toBe(503);
        expect(['AUDIT_UNAVAILABLE', 'STORE_UNAVAILABLE', 'AUTH_UNAVAILABLE']).toContain(
          r.body.code,
        );
        const again = await exec('op-a', 'vm-1', { command: `touch ${marker}` });
        expect(again.status).toBe(503);
        expect(existsSync(marker)).toBe(false);
      } finally {
        cluster.start();
      }
      const deadline = Date.now() + 15_000;
      let last: Reply | undefined;
      while (Date.now() < deadline) {
        last = await exec('op-a', 'vm-1', { command: `touch ${marker}` });
        if (last.status === 200) {
          break;
        }
        await sleep(200);
      }
      expect(last?.status).toBe(200);
      expect(existsSync(marker)).toBe(true);
      expect((await call('auditor', 'GET', '/api/audit/verify')).body).toMatchObject({ ok: true });
    });

    it('should refuse UPDATE to the application role and name a row a superuser changed', async () => {
      const app = new pg.Client({ connectionString: appUrl });
      await app.connect();
      try {
        await expect(
          app.query(`UPDATE audit_events SET actor = 'x' WHERE seq = 3`),
        ).rejects.toThrow(/append-only/);
        await expect(app.query('DELETE FROM audit_events WHERE seq = 3')).rejects.toThrow(
          /append-only/,
        );
        await expect(app.query('TRUNCATE audit_events')).rejects.toThrow(/append-only/);
      } finally {
        await app.end();
      }
      const target = await superuser(async (c) => {
        const row = await c.query<{ seq: string }>(
          `SELECT seq FROM audit_events WHERE operation = 'execute' AND kind = 'outcome'
           ORDER BY seq LIMIT 1 OFFSET 10`,
        );
        const seq = Number(row.rows[0]!.seq);
        // A superuser can bypass the trigger; the chain still tells.
        await c.query('SET session_replication_role = replica');
        await c.query(`UPDATE audit_events SET exit_code = 1 WHERE seq = $1`, [seq]);
        return seq;
      });
      const verify = await call('auditor', 'GET', '/api/audit/verify');
      expect(verify.body.ok).toBe(false);
      expect(verify.body.first_broken).toMatchObject({ seq: target });
      expect(verify.body.first_broken.reason).toMatch(/content changed/);
    });
  });
});
