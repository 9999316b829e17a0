// Issue 18 items 1, 2 and 5 through the whole stack (real nats-server, PostgreSQL, control
// plane, node daemon and agents): no file contents, env values or stdin in any audit row or
// export; stored and streamed output redacted and readable only by its actor or with
// audit.read_output; a row PostgreSQL would refuse fails its own request (400) and never blocks
// the ordered writer.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import pg from 'pg';
import { WriteGuestFileRequestSchema, WriteGuestFileResponseSchema } from '@lq/proto';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import { TEST_ADMIN_TOKEN } from '../../../../test/support/control-plane-process.js';

const SECRET = 's3cret';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface Reply {
  status: number;
  body: Record<string, any>;
  text: string;
}

describe('secrets and poison rows in the audit trail', () => {
  let stack: OneNodeStack;
  let dir: string;
  const tokens: Record<string, string> = { admin: TEST_ADMIN_TOKEN };

  async function send(who: string, method: string, path: string, body?: string | Buffer) {
    const res = await fetch(`${stack.cp.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${tokens[who]}`,
        ...(typeof body === 'string' ? { 'content-type': 'application/json' } : {}),
      },
      body,
    });
    const text = await res.text();
    let parsed: Record<string, any> = {};
    try {
      parsed = JSON.parse(text) as Record<string, any>;
    } catch {
      // ndjson, csv, event streams
    }
    return { status: res.status, body: parsed, text } satisfies Reply;
  }
  const call = (who: string, method: string, path: string, body?: unknown) =>
    send(who, method, path, body === undefined ? undefined : JSON.stringify(body));
  const connect = (who: string, method: string, body: unknown) =>
    send(who, 'POST', `/limiquantix.compute.v1.VMService/${method}`, JSON.stringify(body));

  async function userWith(name: string, binding: Record<string, unknown>): Promise<void> {
    expect((await call('admin', 'POST', '/api/users', { username: name })).status).toBe(201);
    expect(
      (await call('admin', 'POST', '/api/role-bindings', { user: name, ...binding })).status,
    ).toBe(201);
    const key = await call('admin', 'POST', `/api/users/${name}/api-keys`, { name: 'test' });
    tokens[name] = key.body.token as string;
  }

  /** WriteGuestFile over gRPC (binary protobuf), as the admin. */
  function grpcWrite(path: string, data: Buffer): Promise<void> {
    const client = new grpc.Client(
      `127.0.0.1:${stack.cp.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
    const request = create(WriteGuestFileRequestSchema, {
      vmId: 'vm-1',
      path,
      data,
      create: true,
      truncate: true,
    });
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        '/limiquantix.compute.v1.VMService/WriteGuestFile',
        (r: typeof request) => Buffer.from(toBinary(WriteGuestFileRequestSchema, r)),
        (b: Buffer) => fromBinary(WriteGuestFileResponseSchema, b),
        request,
        metadata,
        (err) => {
          client.close();
          if (err) {
            reject(err);
          } else {
            resolve();
          }
        },
      );
    });
  }

  /** Every row of every table, as text: what a database reader would see. */
  async function everyRow(): Promise<string> {
    const c = new pg.Client({ connectionString: stack.db.url });
    await c.connect();
    try {
      const tables = await c.query<{ t: string }>(
        `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'`,
      );
      const parts: string[] = [];
      for (const { t } of tables.rows) {
        const rows = await c.query<{ j: string }>(`SELECT row_to_json(x)::text AS j FROM "${t}" x`);
        parts.push(...rows.rows.map((r) => r.j));
      }
      return parts.join('\n');
    } finally {
      await c.end();
    }
  }

  /** The forms the secret would take in a row or an export: text, base64, hex, a byte map. */
  function expectNoSecret(text: string, secret = SECRET): void {
    const bytes = Buffer.from(secret);
    expect(text).not.toContain(secret);
    expect(text).not.toContain(bytes.toString('base64').replace(/=+$/, ''));
    expect(text).not.toContain(bytes.toString('hex'));
    expect(text).not.toContain(`"0":${bytes[0]},"1":${bytes[1]}`);
  }

  beforeAll(async () => {
    stack = await startOneNodeStack({
      name: 'secrets',
      vms: 2,
      simConfig: { files: { roots: ['/'] } },
      cpEnv: {
        LQ_OUTPUT_REDACT_PATTERNS: JSON.stringify(['(?<=pin=)\\d+']),
        LQ_AUDIT_RETRY_MS: '200',
      },
    });
    dir = mkdtempSync(join(tmpdir(), 'lq-secrets-'));
    await userWith('op-a', { role: 'operator' });
    await userWith('op-b', { role: 'operator' });
    await userWith('historian', { role: 'auditor' });
    await userWith('evidence', { role: 'output_auditor' });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('file contents, env values and stdin', () => {
    it('should keep a file write of s3cret (Connect, gRPC and REST) out of every row and export', async () => {
      const viaConnect = join(dir, 'connect.txt');
      const w = await connect('op-a', 'WriteGuestFile', {
        vmId: 'vm-1',
        path: viaConnect,
        data: Buffer.from(SECRET).toString('base64'),
        create: true,
        truncate: true,
        mode: 0o600,
      });
      expect(w.status).toBe(200);
      const viaRest = join(dir, 'rest.txt');
      const up = await send(
        'op-a',
        'PUT',
        `/api/vms/vm-1/files?path=${encodeURIComponent(viaRest)}&mode=600`,
        Buffer.from(SECRET),
      );
      expect([up.status, up.body.bytes]).toEqual([200, SECRET.length]);
      const viaGrpc = join(dir, 'grpc.txt');
      await grpcWrite(viaGrpc, Buffer.from(SECRET));
      expect([viaConnect, viaRest, viaGrpc].map((f) => readFileSync(f, 'utf8'))).toEqual([
        SECRET,
        SECRET,
        SECRET,
      ]);

      expectNoSecret(await everyRow());
      for (const format of ['ndjson', 'csv']) {
        for (const list of ['events', 'executions']) {
          const exported = await call('admin', 'GET', `/api/audit/${list}?format=${format}`);
          expect(exported.status).toBe(200);
          expectNoSecret(exported.text);
        }
      }
      // What the rows hold instead: path, size, mode and the sha256.
      const rows = (await call('admin', 'GET', '/api/audit/events?operation=file.write&limit=20'))
        .body.events as Array<Record<string, any>>;
      const connectIntent = rows.find((e) => e.kind === 'intent' && e.params.path === viaConnect);
      expect(connectIntent?.params).toMatchObject({
        path: viaConnect,
        bytes: SECRET.length,
        sha256: sha256(SECRET),
        mode: '600',
      });
      const restIntent = rows.find((e) => e.kind === 'intent' && e.params.path === viaRest);
      expect(restIntent?.params).toMatchObject({ path: viaRest, mode: '600' });
      const restOutcome = rows.find(
        (e) => e.kind === 'outcome' && e.request_id === restIntent?.request_id,
      );
      expect(restOutcome?.params).toMatchObject({
        bytes: SECRET.length,
        size: SECRET.length,
        sha256: sha256(SECRET),
      });
    });

    it('should keep env values and stdin of a fleet run and an async execution out of every row', async () => {
      const value = 'run-env-value-6620';
      const stdin = 'run-stdin-value-6621';
      const run = await call('op-a', 'POST', '/api/runs', {
        target: { vm_ids: ['vm-1'] },
        command: 'cat >/dev/null; true',
        env: { DEPLOY_KEY: value },
        stdin,
      });
      expect(run.status).toBe(202);
      const started = await call('op-a', 'POST', '/api/vms/vm-1/executions', {
        command: 'cat >/dev/null; true',
        env: { OTHER: value },
        stdin,
      });
      expect(started.status).toBe(202);
      for (let i = 0; i < 200; i++) {
        const [r, e] = await Promise.all([
          call('op-a', 'GET', `/api/runs/${run.body.id}`),
          call('op-a', 'GET', `/api/executions/${started.body.id}`),
        ]);
        if (
          r.body.status !== 'running' &&
          !['pending', 'running'].includes(String(e.body.status))
        ) {
          break;
        }
        await sleep(100);
      }
      const rows = await everyRow();
      expectNoSecret(rows, value);
      expectNoSecret(rows, stdin);
    });

    it('should keep only the names of env entries and the digest of stdin', async () => {
      const plain = 'plain-env-value-5531';
      const stdin = 'stdin-value-7731';
      const r = await call('op-a', 'POST', '/api/vms/vm-1/execute', {
        command: 'cat >/dev/null; echo "$GREETING" >/dev/null',
        env: { GREETING: plain },
        stdin,
      });
      expect(r.status).toBe(200);
      const rows = await everyRow();
      expectNoSecret(rows, plain);
      expectNoSecret(rows, stdin);
      const [intent] = (await call('admin', 'GET', '/api/audit/executions?actor=op-a&limit=1')).body
        .executions;
      expect(intent.params).toMatchObject({
        env: { GREETING: '[redacted]' },
        stdin: { sha256: sha256(stdin), bytes: stdin.length },
      });
    });
  });

  describe('secrets in output', () => {
    const output = 'user=deploy\npassword=hunter2-pw-8841\npin=4242\nfine\n';
    // The secrets come in through env (whose values are never stored), not the command line.
    const env = { PW: 'hunter2-pw-8841', PIN: '4242' };
    const command = `printf 'user=deploy\\npassword=%s\\npin=%s\\nfine\\n' "$PW" "$PIN"`;

    it('should answer its caller the output as it was, and store it redacted, saying so', async () => {
      const r = await call('op-a', 'POST', '/api/vms/vm-1/execute', {
        command,
        env,
      });
      expect(r.status).toBe(200);
      expect(r.body.stdout).toBe(output);

      const [stored] = (await call('evidence', 'GET', '/api/audit/executions?actor=op-a&limit=1'))
        .body.executions;
      expect(stored.stdout).toBe('user=deploy\npassword=[redacted]\npin=[redacted]\nfine\n');
      expect(stored.output_redaction).toMatchObject({
        redacted: true,
        stdout: 2,
        stderr: 0,
      });
      // The row keeps the digest of what the caller got; verify checks the stored copy.
      expect(stored.stdout_sha256).toBe(sha256(output));
      expect((await call('admin', 'GET', '/api/audit/verify')).body).toMatchObject({ ok: true });
      expect(await everyRow()).not.toContain('hunter2-pw-8841');
    });

    it('should withhold stored output from a reader of the history without audit.read_output', async () => {
      const page = await call('historian', 'GET', '/api/audit/executions?actor=op-a&limit=5');
      expect(page.status).toBe(200);
      expect(page.body.executions.length).toBeGreaterThan(0);
      for (const e of page.body.executions) {
        expect(e).toMatchObject({ stdout: null, stderr: null, output_withheld: true });
        expect(e.command).toBeDefined();
      }
      const csv = await call('historian', 'GET', '/api/audit/executions?actor=op-a&format=csv');
      expect(csv.status).toBe(200);
      expect(csv.text).not.toContain('password=[redacted]');
    });

    it('should redact an async execution’s stored and streamed output, and serve it only to its actor or audit.read_output', async () => {
      // The secrets come in through env: the command line itself is evidence, kept as given.
      const started = await call('op-a', 'POST', '/api/vms/vm-1/executions', {
        command: `sleep 1; printf '%s\\n%s\\n%s\\nid %s\\n' "$BEGIN" "$KB" "$END" "$AK"`,
        env: {
          BEGIN: '-----BEGIN RSA PRIVATE KEY-----',
          KB: 'MIIEpAIBAAKCAQEA7',
          END: '-----END RSA PRIVATE KEY-----',
          AK: 'AKIAIOSFODNN7EXAMPLE',
        },
      });
      expect(started.status).toBe(202);
      const id = started.body.id as string;

      // A follower that is not the caller, from before the output exists: live chunks redacted.
      const follow = await fetch(`${stack.cp.url}/api/executions/${id}/output?follow=1`, {
        headers: { Authorization: `Bearer ${tokens.evidence}` },
      });
      expect(follow.status).toBe(200);
      const streamed = await follow.text();
      expect(streamed).toContain('event: end');
      expect(streamed).not.toContain('MIIEpAIBAAKCAQEA7');
      expect(streamed).not.toContain('AKIAIOSFODNN7EXAMPLE');
      expect(streamed).toContain('[redacted]');

      for (const who of ['op-a', 'evidence', 'admin']) {
        const out = await call(who, 'GET', `/api/executions/${id}/output`);
        expect(out.status).toBe(200);
        const text = out.body.chunks.map((c: { text: string }) => c.text).join('');
        expect(text).toBe('[redacted]\nid [redacted]\n');
        expect(out.body.chunks.some((c: { redactions?: number }) => (c.redactions ?? 0) > 0)).toBe(
          true,
        );
      }
      const rows = await everyRow();
      expect(rows).not.toContain('AKIAIOSFODNN7EXAMPLE');
      expect(rows).not.toContain('MIIEpAIBAAKCAQEA7');

      // Another operator of the project, and an auditor of the history: the status, not the output.
      for (const who of ['op-b', 'historian']) {
        const out = await call(who, 'GET', `/api/executions/${id}/output`);
        expect([out.status, out.body.permission]).toEqual([403, 'audit.read_output']);
        const sse = await call(who, 'GET', `/api/executions/${id}/output?follow=1`);
        expect(sse.status).toBe(403);
        const status = await call(who, 'GET', `/api/executions/${id}`);
        expect(status.status).toBe(200);
        expect(status.body).toMatchObject({ id, stdout: '', stderr: '', output_withheld: true });
      }
      const own = await call('op-a', 'GET', `/api/executions/${id}`);
      expect(own.body.output_withheld).toBeUndefined();
      expect(own.body.stdout).toBe('[redacted]\nid [redacted]\n');
      const denials = await call(
        'admin',
        'GET',
        '/api/audit/events?kind=denied&operation=execution.output&limit=20',
      );
      expect(denials.body.events.map((e: { actor: string }) => e.actor)).toEqual(
        expect.arrayContaining(['op-b', 'historian']),
      );
    });
  });

  it('should redact secrets the output’s chunks cut in two, in the stored output and for a follower', async () => {
    // Each piece is its own chunk (the agent sends what it read before each sleep): the
    // password's value and a private key's body straddle chunks.
    const started = await call('op-a', 'POST', '/api/vms/vm-1/executions', {
      command: [
        `printf 'start\\npass'`,
        `sleep 0.4; printf 'word=%s' "$P1"`,
        `sleep 0.4; printf '%s\\n%s\\n' "$P2" "$BEGIN"`,
        `sleep 0.4; printf '%s\\n' "$KB1"`,
        `sleep 0.4; printf '%s\\n%s\\nend\\n' "$KB2" "$END"`,
      ].join('; '),
      env: {
        P1: 'hunter2-fi',
        P2: 'rst-half',
        BEGIN: '-----BEGIN OPENSSH PRIVATE KEY-----',
        KB1: 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE',
        KB2: 'QyNTUxOQAAACDm0S0sZ2lXuB5mYQ8fQ3sG',
        END: '-----END OPENSSH PRIVATE KEY-----',
      },
    });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    const follow = await fetch(`${stack.cp.url}/api/executions/${id}/output?follow=1`, {
      headers: { Authorization: `Bearer ${tokens.evidence}` },
    });
    const streamed = await follow.text();
    expect(streamed).toContain('event: end');
    for (const secret of ['hunter2', 'rst-half', 'b3BlbnNz', 'QyNTUx']) {
      expect([secret, streamed.includes(secret)]).toEqual([secret, false]);
    }
    const out = await call('op-a', 'GET', `/api/executions/${id}/output`);
    expect(out.status).toBe(200);
    expect(out.body.chunks.length).toBeGreaterThan(1);
    const text = out.body.chunks.map((c: { text: string }) => c.text).join('');
    expect(text).toBe('start\npassword=[redacted]\n[redacted]\nend\n');
  });

  describe('one outcome per intent', () => {
    it('should give each execution a fleet run cancels its own request id, intent and outcome', async () => {
      const run = await call('op-a', 'POST', '/api/runs', {
        target: { vm_ids: ['vm-1', 'vm-2'] },
        command: 'sleep 30',
        max_concurrency: 2,
      });
      expect(run.status).toBe(202);
      let started = 0;
      for (let i = 0; i < 300 && started < 2; i++) {
        const view = await call('op-a', 'GET', `/api/runs/${run.body.id}`);
        started = (view.body.vms as Array<{ state: string }>).filter(
          (t) => t.state === 'running',
        ).length;
        if (started < 2) {
          await sleep(100);
        }
      }
      expect(started).toBe(2);
      const cancelled = await call('op-a', 'POST', `/api/runs/${run.body.id}/cancel`);
      expect(cancelled.status).toBe(202);
      const c = new pg.Client({ connectionString: stack.db.url });
      await c.connect();
      try {
        let pairs: Array<{ request_id: string; intents: number; outcomes: number }> = [];
        for (let i = 0; i < 100; i++) {
          pairs = (
            await c.query<{ request_id: string; intents: number; outcomes: number }>(
              `SELECT request_id, count(*) FILTER (WHERE kind = 'intent')::int AS intents,
                      count(*) FILTER (WHERE kind = 'outcome')::int AS outcomes
               FROM audit_events WHERE operation = 'execute.cancel' GROUP BY request_id`,
            )
          ).rows;
          if (pairs.length === 2 && pairs.every((p) => p.outcomes === 1)) {
            break;
          }
          await sleep(100);
        }
        expect(pairs.map((p) => [p.intents, p.outcomes])).toEqual([
          [1, 1],
          [1, 1],
        ]);
      } finally {
        await c.end();
      }
      expect(stack.cp.output()).not.toContain('second outcome row');
    });
  });

  describe('rows PostgreSQL would refuse', () => {
    const pings = async (n: number) => {
      const statuses: number[] = [];
      for (let i = 0; i < n; i += 10) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(10, n - i) }, () =>
            call('op-a', 'POST', '/api/vms/vm-1/ping', {}),
          ),
        );
        statuses.push(...batch.map((r) => r.status));
      }
      return statuses;
    };

    it('should fail a request whose intent PostgreSQL would refuse with 400, and run the next 100', async () => {
      const bad = await call('op-a', 'POST', '/api/vms/vm-1/execute', {
        command: `echo lone-surrogate-\ud800`,
      });
      expect([bad.status, bad.body.code]).toEqual([400, 'INVALID_RECORD']);
      expect(bad.body.message).toContain('params.command');
      const badKey = await call('op-a', 'POST', '/api/vms/vm-1/executions', {
        argv: ['/bin/echo', 'x\udc00'],
      });
      expect(badKey.status).toBe(400);
      const overConnect = await connect('op-a', 'ExecuteScript', {
        vmId: 'vm-1',
        command: 'echo \ud800',
      });
      expect(overConnect.status).toBe(400);
      expect(await pings(100)).toEqual(Array.from({ length: 100 }, () => 200));
    });

    it('should write an admin row whose text PostgreSQL would refuse and not block the writer', async () => {
      // An API key's name is stored as given and named in its admin row: a lone surrogate made
      // that row unwritable, retried at the head of the writer's queue forever while every
      // intent behind it answered 503.
      const created = await call('op-a', 'POST', '/api/users/op-a/api-keys', {
        name: 'key-\ud800-name',
      });
      expect(created.status).toBe(201);
      expect(await pings(100)).toEqual(Array.from({ length: 100 }, () => 200));
      let row: Record<string, any> | undefined;
      for (let i = 0; i < 100 && !row; i++) {
        const events = (
          await call('admin', 'GET', '/api/audit/events?kind=admin&actor=op-a&limit=20')
        ).body.events as Array<Record<string, any>>;
        row = events.find((e) => e.operation === 'api_key.create');
        if (!row) {
          await sleep(100);
        }
      }
      expect(row?.params.name).toBe('key-\uFFFD-name');
      expect((await call('admin', 'GET', '/api/audit/verify')).body).toMatchObject({ ok: true });
    });
  });
});
