// lqctl (issue 8, acceptance 5) against real parts: the bundled CLI (dist/lqctl/lqctl.cjs) runs
// as a child process against a control plane, nats-server, node daemon and three simulated VMs
// (real guest agents). exec streams output live and exits with the remote exit code, run
// summarises a fleet, cp round-trips a file, and errors say what to do.
//
// Against `npm start`'s stack instead of starting one (what a newcomer runs):
//   LQCTL_E2E_SERVER=http://localhost:8080 LQCTL_E2E_TOKEN=lq_… \
//     NODE_OPTIONS=--experimental-vm-modules npx jest test/system/lqctl.spec.ts
import { spawn } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort } from '../support/nats-server.js';
import { TEST_ADMIN_TOKEN, waitForReadyVms } from '../support/control-plane-process.js';
import { startOneNodeStack, type OneNodeStack } from '../support/one-node-stack.js';
import type { VmView } from '@lq/api';

const LQCTL = resolve('dist/lqctl/lqctl.cjs');
const EXTERNAL = process.env.LQCTL_E2E_SERVER;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  /** When each stdout line first appeared, in ms after the spawn. */
  lineAt: Map<string, number>;
  /** ms from spawn to exit. */
  tookMs: number;
}

describe(`lqctl against ${EXTERNAL ? `npm start’s stack at ${EXTERNAL}` : 'a real stack'}`, () => {
  let work: string;
  let stack: OneNodeStack | undefined;
  let server: string;
  let adminToken: string;
  const tag = randomBytes(4).toString('hex');

  /** Runs the bundled lqctl; `env` entries set to undefined are removed. */
  function lqctl(
    args: string[],
    options: {
      env?: Record<string, string | undefined>;
      stdin?: string;
      onStdout?: (all: string, kill: (signal: NodeJS.Signals) => void) => void;
      timeoutMs?: number;
    } = {},
  ): Promise<Ran> {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      LQ_SERVER: server,
      LQ_TOKEN: adminToken,
      LQCTL_CONFIG: join(work, 'config.json'),
      XDG_CONFIG_HOME: work,
    };
    delete env.NODE_OPTIONS;
    for (const [k, v] of Object.entries(options.env ?? {})) {
      if (v === undefined) {
        delete env[k];
      } else {
        env[k] = v;
      }
    }
    const t0 = Date.now();
    const proc = spawn(process.execPath, [LQCTL, ...args], { env, stdio: 'pipe' });
    proc.stdin.end(options.stdin ?? '');
    const ran: Ran = { code: null, stdout: '', stderr: '', lineAt: new Map(), tookMs: 0 };
    proc.stdout.on('data', (d: Buffer) => {
      ran.stdout += d.toString();
      for (const line of ran.stdout.split('\n').slice(0, -1)) {
        if (!ran.lineAt.has(line)) {
          ran.lineAt.set(line, Date.now() - t0);
        }
      }
      options.onStdout?.(ran.stdout, (s) => proc.kill(s));
    });
    proc.stderr.on('data', (d: Buffer) => (ran.stderr += d.toString()));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`lqctl ${args.join(' ')} still running:\n${ran.stdout}\n${ran.stderr}`));
      }, options.timeoutMs ?? 30_000);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        ran.code = code;
        ran.tookMs = Date.now() - t0;
        // Let the pipes deliver what is left.
        setImmediate(() => resolvePromise(ran));
      });
    });
  }

  async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${server}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) {
      throw new Error(`${method} ${path}: ${res.status} ${text}`);
    }
    return JSON.parse(text) as T;
  }

  /** A new user with one global binding and an API key. */
  async function userWithKey(
    role: string,
    password?: string,
  ): Promise<{ name: string; key: string }> {
    const name = `lqctl-${role}-${tag}`;
    await api('POST', '/api/users', { username: name, password });
    await api('POST', '/api/role-bindings', { user: name, role });
    const key = await api<{ token: string }>('POST', `/api/users/${name}/api-keys`, {
      name: 'lqctl-e2e',
    });
    return { name, key: key.token };
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-lqctl-'));
    if (EXTERNAL) {
      server = EXTERNAL;
      adminToken = process.env.LQCTL_E2E_TOKEN ?? '';
      await waitForReadyVms(server, 3, { ids: ['vm-1', 'vm-2', 'vm-3'], token: adminToken });
    } else {
      stack = await startOneNodeStack({
        name: 'lqctl',
        vms: 3,
        cpEnv: { LQ_PASSWORD_SCRYPT_LOG_N: '12' },
      });
      server = stack.cp.url;
      adminToken = TEST_ADMIN_TOKEN;
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should default to the URL npm start prints', async () => {
    const help = await lqctl(['--help']);
    expect(help.code).toBe(0);
    const start = readFileSync('scripts/start.mjs', 'utf8');
    const port = /intEnv\('LQ_HTTP_PORT', (\d+)/.exec(start)?.[1];
    expect(start).toContain('const base = `http://localhost:${');
    expect(help.stdout).toContain(`default http://localhost:${port}`);
    expect(help.stdout).toMatch(/Exit codes:[\s\S]*4 +not signed in/);
  });

  describe('exec', () => {
    it('should print stdout lines as they happen and exit with the remote exit code', async () => {
      const r = await lqctl([
        'exec',
        'vm-1',
        '--',
        'sh',
        '-c',
        'for i in 1 2 3; do echo l$i; sleep 1; done; exit 7',
      ]);
      process.stderr.write(
        `[lqctl exec] l1 at ${r.lineAt.get('l1')} ms, l3 at ${r.lineAt.get('l3')} ms, exit after ${r.tookMs} ms\n`,
      );
      expect([r.code, r.stdout, r.stderr]).toEqual([7, 'l1\nl2\nl3\n', '']);
      // Live, not at the end: l1 shows up about two seconds before the command ends.
      expect(r.lineAt.get('l1')!).toBeLessThan(r.tookMs - 1500);
      expect(r.lineAt.get('l3')! - r.lineAt.get('l1')!).toBeGreaterThan(1500);
    });

    it('should keep stdout and stderr apart, asynchronously and with --sync', async () => {
      const cmd = ['--', 'sh', '-c', 'echo out; echo err >&2; exit 3'];
      for (const args of [
        ['exec', 'vm-2', ...cmd],
        ['exec', '--sync', 'vm-2', ...cmd],
      ]) {
        const r = await lqctl(args);
        expect([r.code, r.stdout, r.stderr]).toEqual([3, 'out\n', 'err\n']);
      }
    });

    it('should cancel the remote command on Ctrl-C and exit 130', async () => {
      let interrupted = false;
      const r = await lqctl(['exec', 'vm-3', '--', 'sh', '-c', 'echo started; sleep 60'], {
        onStdout: (all, kill) => {
          if (!interrupted && all.includes('started\n')) {
            interrupted = true;
            kill('SIGINT');
          }
        },
      });
      expect(r.code).toBe(130);
      expect(r.tookMs).toBeLessThan(20_000);
      const id = /cancelling execution ([0-9a-f-]{36})/.exec(r.stderr)?.[1];
      expect(id).toBeDefined();
      expect(r.stderr).toContain(`execution ${id} was cancelled`);
      expect(await api('GET', `/api/executions/${id}`)).toMatchObject({ status: 'cancelled' });
    });

    it('should resume the output after the stream breaks, losing and repeating nothing', async () => {
      // A TCP proxy to the control plane that cuts a first output stream (no after=) right after
      // its first output event; the reconnect carries after=<seq> and passes.
      const target = new URL(server);
      let cuts = 0;
      const proxy: Server = createServer((client) => {
        const upstream = connect(Number(target.port || 80), target.hostname);
        let cutThis = false;
        client.on('data', (d: Buffer) => {
          const head = d.toString('latin1');
          if (/^GET \/api\/executions\/[^ ]+\/output\?follow=1 /m.test(head)) {
            cutThis = !head.split('\r\n')[0]!.includes('after=');
          }
          upstream.write(d);
        });
        upstream.on('data', (d: Buffer) => {
          client.write(d);
          if (cutThis && d.toString('latin1').includes('event: output')) {
            cuts++;
            client.destroy();
            upstream.destroy();
          }
        });
        const end = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', end).on('close', end);
        upstream.on('error', end).on('close', end);
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      try {
        const port = (proxy.address() as { port: number }).port;
        const r = await lqctl(
          ['exec', 'vm-2', '--', 'sh', '-c', 'echo a; sleep 1; echo b; sleep 1; echo c'],
          { env: { LQ_SERVER: `http://127.0.0.1:${port}` } },
        );
        expect(cuts).toBe(1);
        expect([r.code, r.stdout]).toEqual([0, 'a\nb\nc\n']);
        expect(r.stderr).toMatch(/^lqctl: output stream of [0-9a-f-]{36} broke \(.*\); resuming$/m);
      } finally {
        await new Promise((r) => proxy.close(r));
      }
    });

    it('should emit NDJSON events with --json', async () => {
      const r = await lqctl(['--json', 'exec', 'vm-1', '--', 'echo', 'hi']);
      const events = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(r.code).toBe(0);
      expect(events.map((e) => e.event)).toEqual(['started', 'output', 'end']);
      expect(events[1]).toMatchObject({ seq: 1, stream: 'stdout', text: 'hi\n' });
      expect(events[2]).toMatchObject({ status: 'succeeded', exit_code: 0 });
    });
  });

  describe('run', () => {
    it('should run over three VMs two at a time and list each as succeeded', async () => {
      const r = await lqctl([
        'run',
        '--vms',
        'vm-1,vm-2,vm-3',
        '--max-concurrency',
        '2',
        '--',
        'true',
      ]);
      expect(r.code).toBe(0);
      for (const vm of ['vm-1', 'vm-2', 'vm-3']) {
        expect(r.stdout).toMatch(new RegExp(`^${vm} +succeeded +0 `, 'm'));
      }
      expect(r.stdout).toMatch(/run [0-9a-f-]{36} succeeded: 3 succeeded$/m);
      expect(r.stderr).toMatch(/3 VMs, at most 2 at a time/);
    });

    it('should exit 1 and show the exit codes when VMs fail, and target labels', async () => {
      expect((await lqctl(['vm', 'label', 'vm-2', `lqctl=${tag}`])).code).toBe(0);
      try {
        const r = await lqctl(['run', '--target', `lqctl=${tag}`, '--', 'sh', '-c', 'exit 4']);
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/^vm-2 +failed +4 /m);
        expect(r.stdout).not.toContain('vm-1');
        const shown = await lqctl(['vm', 'show', 'vm-2']);
        expect(shown.stdout).toMatch(new RegExp(`^labels: +.*lqctl=${tag}`, 'm'));
      } finally {
        expect((await lqctl(['vm', 'label', 'vm-2', 'lqctl-'])).code).toBe(0);
      }
    });
  });

  it('should copy a 3 MiB file to a VM and back unchanged, with --mode', async () => {
    const local = join(work, 'up.bin');
    const back = join(work, 'down.bin');
    const remote = `/tmp/lqctl-e2e-${tag}.bin`;
    const data = randomBytes(3 * 1024 * 1024);
    writeFileSync(local, data);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    try {
      const up = await lqctl(['cp', '--mode', '0600', local, `vm-1:${remote}`]);
      expect(up.code).toBe(0);
      expect(up.stderr).toMatch(/copied 3\.00 MiB to vm-1:/);
      const down = await lqctl(['cp', `vm-1:${remote}`, back]);
      expect(down.code).toBe(0);
      expect(sha(readFileSync(back))).toBe(sha(data));
      const mode = await lqctl(['exec', 'vm-1', '--', 'stat', '-c', '%a', remote]);
      expect(mode.stdout).toBe('600\n');
    } finally {
      await lqctl(['exec', 'vm-1', '--', 'rm', '-f', remote]);
    }
  });

  it('should make, list, move and remove guest files with ls, mkdir, mv and rm', async () => {
    const dir = `/tmp/lqctl-tree-${tag}`;
    try {
      expect((await lqctl(['mkdir', '-p', `vm-1:${dir}/sub`])).stdout).toBe(
        `created ${dir}\ncreated ${dir}/sub\n`,
      );
      const local = join(work, 'small.txt');
      writeFileSync(local, 'small\n');
      expect((await lqctl(['cp', local, `vm-1:${dir}/`])).code).toBe(0);
      const names = await lqctl(['ls', `vm-1:${dir}`]);
      expect([names.code, names.stdout]).toEqual([0, 'small.txt\nsub/\n']);
      const long = await lqctl(['ls', '-l', `vm-1:${dir}`]);
      expect(long.stdout).toMatch(/^MODE +OWNER +GROUP +SIZE +MODIFIED +NAME$/m);
      expect(long.stdout).toMatch(/^-0644 +root +root +6 B +\d{4}-.* small\.txt$/m);
      expect((await lqctl(['mv', `vm-1:${dir}/small.txt`, `vm-1:${dir}/sub/moved.txt`])).code).toBe(
        0,
      );
      const json = JSON.parse((await lqctl(['--json', 'ls', `vm-1:${dir}/sub`])).stdout) as {
        entries: Array<{ name: string; size: number }>;
      };
      expect(json.entries).toEqual([expect.objectContaining({ name: 'moved.txt', size: 6 })]);
      const refused = await lqctl(['rm', `vm-1:${dir}`]);
      expect([refused.code, refused.stderr]).toEqual([1, expect.stringMatching(/not empty/)]);
      expect((await lqctl(['rm', '-r', `vm-1:${dir}`])).stdout).toBe(
        `removed ${dir} (3 entries)\n`,
      );
      const gone = await lqctl(['ls', `vm-1:${dir}`]);
      expect(gone.code).toBe(1);
      const who = `lqctl-files-viewer-${tag}`;
      await api('POST', '/api/users', { username: who });
      await api('POST', '/api/role-bindings', { user: who, role: 'viewer' });
      const { token } = await api<{ token: string }>('POST', `/api/users/${who}/api-keys`, {});
      const denied = await lqctl(['rm', `vm-1:/tmp`], { env: { LQ_TOKEN: token } });
      expect(denied.code).toBe(5);
      expect(denied.stderr).toMatch(/guest\.file\.write/);
    } finally {
      await lqctl(['exec', 'vm-1', '--', 'rm', '-rf', dir]);
    }
  });

  it('should list the VMs as JSON and as a table', async () => {
    const r = await lqctl(['vms', 'ls', '--json']);
    expect(r.code).toBe(0);
    const vms = JSON.parse(r.stdout) as VmView[];
    expect(vms.filter((v) => /^vm-[123]$/.test(v.id)).map((v) => v.agent_state)).toEqual([
      'ready',
      'ready',
      'ready',
    ]);
    const table = await lqctl(['vms', 'ls']);
    expect(table.stdout).toMatch(
      /^ID +PROJECT +NODE +AGENT +VERSION +OS +IPS +CPU% +MEM% +LABELS$/m,
    );
    expect(table.stdout).toMatch(/^vm-1 +\S+ +\S+ +ready /m);
  });

  it('should find the exec in the command history as NDJSON and in a table', async () => {
    const r = await lqctl(['audit', 'ls', '--executions', '--vm', 'vm-1', '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { argv: string[] | null; exit_code: number | null });
    const exec = rows.find((row) => row.argv?.join(' ').includes('for i in 1 2 3; do echo l$i'));
    expect(exec).toMatchObject({ exit_code: 7 });
    const table = await lqctl(['audit', 'ls', '--executions', '--vm', 'vm-1', '--limit', '3']);
    expect(table.stdout).toMatch(/^ *SEQ +STARTED \(UTC\) +ACTOR +VM +AS +COMMAND +STATUS/m);
    expect(table.stdout.trim().split('\n')).toHaveLength(4);
  });

  describe('errors', () => {
    it('should say to sign in, exit 4, for an unknown and for a revoked key', async () => {
      const unknown = await lqctl(['vms', 'ls'], {
        env: { LQ_TOKEN: 'lq_nokey000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
      });
      expect(unknown.code).toBe(4);
      expect(unknown.stderr).toMatch(/^lqctl: not signed in or key revoked: run lqctl login/);

      const key = await api<{ id: string; token: string }>('POST', '/api/users/admin/api-keys', {
        name: `lqctl-e2e-${tag}`,
      });
      expect((await lqctl(['vms', 'ls'], { env: { LQ_TOKEN: key.token } })).code).toBe(0);
      await api('DELETE', `/api/api-keys/${key.id}`);
      let revoked: Ran | undefined;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(250)) {
        // Replicas remember a key for LQ_AUTH_CACHE_SECONDS (2 s).
        revoked = await lqctl(['vms', 'ls'], { env: { LQ_TOKEN: key.token } });
        if (revoked.code !== 0) {
          break;
        }
      }
      expect(revoked?.code).toBe(4);
      expect(revoked?.stderr).toMatch(/not signed in or key revoked: run lqctl login.*revoked/);
    });

    it('should name the missing permission, exit 5, when a viewer runs a command', async () => {
      const viewer = await userWithKey('viewer');
      const r = await lqctl(['exec', 'vm-1', '--', 'true'], { env: { LQ_TOKEN: viewer.key } });
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/^lqctl: permission denied: the guest.exec permission is missing/);
    });

    it('should exit 3 when nothing listens at the server', async () => {
      const r = await lqctl(['vms', 'ls'], {
        env: { LQ_SERVER: `http://127.0.0.1:${await freePort()}` },
      });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(
        /cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
      );
    });
  });

  it('should quiesce a VM, show it frozen, and thaw it', async () => {
    const q = await lqctl(['quiesce', 'vm-3', '--timeout', '30']);
    try {
      expect(q.code).toBe(0);
      expect(q.stdout).toMatch(/^vm-3: froze \//);
      expect(q.stdout).toMatch(/thaws by itself at \d{4}-\d\d-\d\dT/);
      const status = await lqctl(['quiesce', '--status', 'vm-3']);
      expect(status.stdout).toMatch(/^vm-3: frozen since \d{4}-/);
    } finally {
      const thaw = await lqctl(['thaw', 'vm-3']);
      expect([thaw.code, thaw.stdout]).toEqual([0, expect.stringMatching(/^vm-3: thawed \//)]);
    }
    expect((await lqctl(['quiesce', '--status', 'vm-3'])).stdout).toMatch(/^vm-3: not frozen/);
  });

  describe('login', () => {
    it('should store an API key in a config file with mode 0600 and use it', async () => {
      const config = join(work, 'login-key', 'config.json');
      const env = { LQ_TOKEN: undefined, LQCTL_CONFIG: config };
      const r = await lqctl(['login', '--api-key', adminToken], { env });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        `signed in to ${server} as admin (API key ${adminToken.split('_')[1]}): admin on every project\n`,
      );
      expect(statSync(config).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(config, 'utf8'))).toEqual({
        current_context: 'default',
        contexts: { default: { server, api_key: adminToken, username: 'admin' } },
      });
      const ls = await lqctl(['vms', 'ls'], { env: { ...env, LQ_SERVER: undefined } });
      expect([ls.code, ls.stderr]).toEqual([0, '']);
      const bad = await lqctl(
        ['login', '--api-key', 'lq_nokey000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
        {
          env: { ...env, LQCTL_CONFIG: join(work, 'login-bad.json') },
        },
      );
      expect(bad.code).toBe(4);
      expect(bad.stderr).toMatch(/sign-in refused/);
    });

    it('should sign in with a password from stdin and refresh the session after a 401', async () => {
      const password = `correct horse ${tag}`;
      const user = await userWithKey('operator', password);
      const config = join(work, 'login-password.json');
      const env = { LQ_TOKEN: undefined, LQCTL_CONFIG: config };
      const r = await lqctl(['login', '--username', user.name], { env, stdin: `${password}\n` });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(
        `as ${user.name} (signed in with a password): operator on every project`,
      );
      type Stored = { contexts: Record<string, Record<string, string>> };
      const session = (JSON.parse(readFileSync(config, 'utf8')) as Stored).contexts.default!;
      expect(session).toMatchObject({ username: user.name, server });
      // An access token the server no longer accepts (as after it expired): one refresh, then on.
      // Written in the old single-server format, which lqctl still reads (and then rewrites).
      writeFileSync(
        config,
        JSON.stringify({ ...session, access_token: `${session.access_token}x` }),
        {
          mode: 0o600,
        },
      );
      const ls = await lqctl(['vms', 'ls'], { env });
      expect([ls.code, ls.stderr]).toEqual([0, '']);
      const after = (JSON.parse(readFileSync(config, 'utf8')) as Stored).contexts.default!;
      expect(after.refresh_token).not.toBe(session.refresh_token);
      expect(after.access_token).not.toBe(session.access_token);
      expect(statSync(config).mode & 0o777).toBe(0o600);
      const wrong = await lqctl(['login', '--username', user.name], { env, stdin: 'nope\n' });
      expect(wrong.code).toBe(4);
      expect(wrong.stderr).toMatch(/sign-in refused by .*: wrong username or password/);
    });
  });
});
