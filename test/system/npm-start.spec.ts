// `npm start` (issue 6, acceptance 1 and 2): the whole platform from scripts/start.mjs on
// embedded defaults (embedded PostgreSQL, its own nats-server, control plane, node daemon, 3
// simulated VMs), the printed curl example run as printed, Ctrl-C leaving no process behind,
// and a second start keeping users, inventory and audit history.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AuthorizationError,
  PermissionViolationError,
  connect,
  type NatsConnection,
} from '@nats-io/transport-node';
import { ExecuteRequestSchema, GuestRequestSchema, subjects } from '@lq/proto';
import { freePort } from '../support/nats-server.js';
import { qemuAvailable } from '../support/qemu-guest.js';

interface Started {
  proc: ChildProcess;
  output: () => string;
}

function start(
  dataDir: string,
  httpPort: number,
  grpcPort: number,
  args: string[] = [],
  /** How long the stack may take to say it is up (a busy machine, a first image build). */
  withinMs = 150_000,
): Promise<Started> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LQ_DATA_DIR: dataDir,
    LQ_HTTP_PORT: String(httpPort),
    LQ_GRPC_PORT: String(grpcPort),
  };
  // What a newcomer has: none of these.
  delete env.DATABASE_URL;
  delete env.NATS_URL;
  delete env.LQ_ADMIN_TOKEN;
  delete env.NODE_OPTIONS;
  const proc = spawn(process.execPath, ['scripts/start.mjs', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Ctrl-C, as a user would: start.mjs stops what it started (a QEMU guest included).
      proc.kill('SIGINT');
      reject(new Error(`not running after ${withinMs / 1000} s:\n${out}`));
    }, withinMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ctrl-C stops everything.')) {
        clearTimeout(timer);
        resolve({ proc, output: () => out });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited ${code}:\n${out}`));
    });
  });
}

/** Every process descending from `pid` (children, their children, …). */
function descendants(pid: number): number[] {
  const rows = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of rows) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function stop(s: Started): Promise<{ code: number | null; leftover: number[] }> {
  const family = descendants(s.proc.pid!);
  const exited = new Promise<number | null>((resolve) => s.proc.once('exit', (c) => resolve(c)));
  s.proc.kill('SIGINT');
  const code = await exited;
  return { code, leftover: family.filter(alive) };
}

function curlFrom(output: string): string {
  const line = output
    .split('\n')
    .find((l) => l.trim().startsWith('curl ') && l.includes('uname -a'));
  if (!line) {
    throw new Error(`no curl example printed:\n${output}`);
  }
  return line.trim();
}

function lqctlLoginFrom(output: string): string {
  const line = output
    .split('\n')
    .find((l) => l.trim().startsWith('npm run -s lqctl -- --server ') && l.includes(' login '));
  if (!line) {
    throw new Error(`no lqctl login line printed:\n${output}`);
  }
  return line.trim();
}

describe('npm start', () => {
  let dataDir: string;
  let httpPort: number;
  let grpcPort: number;
  let running: Started | undefined;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'lq-start-'));
    [httpPort, grpcPort] = [await freePort(), await freePort()];
  });

  afterAll(async () => {
    if (running && running.proc.exitCode === null) {
      await stop(running);
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('should bring the stack up and answer the printed curl example with the guest’s uname -a', async () => {
    running = await start(dataDir, httpPort, grpcPort);
    const out = running.output();
    expect(out).toMatch(/Admin API key\s+lq_[a-z0-9]{8}_[A-Za-z0-9]{40}/);
    expect(out).toContain(`http://localhost:${httpPort}/api/docs`);
    const reply = JSON.parse(execFileSync('sh', ['-c', curlFrom(out)], { encoding: 'utf8' })) as {
      exit_code: number;
      stdout: string;
    };
    expect(reply.exit_code).toBe(0);
    expect(reply.stdout).toMatch(/^Linux \S+ /);
    // The printed lqctl line signs in as printed (issue 21 item 6: whatever LQ_DATA_DIR says,
    // here a temporary one), and the stored login lists the simulated VMs.
    const home = mkdtempSync(join(tmpdir(), 'lq-npm-start-home-'));
    try {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        HOME: home,
        XDG_CONFIG_HOME: join(home, '.config'),
      };
      delete env.LQCTL_CONFIG;
      delete env.LQ_SERVER;
      delete env.LQ_TOKEN;
      delete env.NODE_OPTIONS;
      execFileSync('sh', ['-c', lqctlLoginFrom(out)], { encoding: 'utf8', env });
      const names = execFileSync(
        process.execPath,
        ['dist/lqctl/lqctl.cjs', 'vms', 'ls', '-o', 'name'],
        {
          encoding: 'utf8',
          env,
        },
      );
      expect(names.split('\n').filter(Boolean)).toEqual(
        expect.arrayContaining(['vm-1', 'vm-2', 'vm-3']),
      );
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    expect(out).toMatch(/Audit public key\s+\S{20,}/);
    // The web console is built and served at /.
    const page = await fetch(`http://127.0.0.1:${httpPort}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    // Outcome rows spooled during a database outage are kept with the data (not in /tmp).
    expect(existsSync(join(dataDir, 'audit-spool'))).toBe(true);
  }, 200_000);

  // Issue 15, item 3: with an open nats-server, anyone on this machine could send a GuestRequest
  // to lq.v1.node.dev-node-1.guest.execute and run root commands, unaudited.
  it('should run its nats-server with credentials and deploy/nats permissions: no client without them, no guest operation from the node daemon’s', async () => {
    const out = running!.output();
    const url = /NATS: nats-server on (127\.0\.0\.1:\d+)/.exec(out)?.[1];
    expect(url).toBeDefined();
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(AuthorizationError);
    await expect(
      connect({ servers: url, user: 'lq-control-plane', pass: 'guessed', reconnect: false }),
    ).rejects.toThrow(AuthorizationError);

    // The credentials and the server's config, generated into the data dir, private.
    const natsDir = join(dataDir, 'nats');
    for (const name of readdirSync(natsDir)) {
      const st = statSync(join(natsDir, name));
      // Files 0600; the JetStream store 0700.
      expect([name, st.mode & 0o777]).toEqual([name, st.isDirectory() ? 0o700 : 0o600]);
    }
    expect(statSync(natsDir).mode & 0o777).toBe(0o700);
    const users = JSON.parse(readFileSync(join(natsDir, 'users.json'), 'utf8')) as Record<
      string,
      string
    >;
    expect(Object.keys(users).sort()).toEqual(['lq-control-plane', 'lq-node-dev-node-1']);

    const node: NatsConnection = await connect({
      servers: url,
      user: 'lq-node-dev-node-1',
      pass: users['lq-node-dev-node-1'],
      reconnect: false,
    });
    try {
      const errors: Error[] = [];
      void (async () => {
        for await (const s of node.status()) {
          if (s.type === 'error') {
            errors.push(s.error);
          }
        }
      })();
      const subject = subjects.guest('dev-node-1', 'execute');
      const marker = join(dataDir, 'ran-from-nats');
      node.publish(
        subject,
        toBinary(
          GuestRequestSchema,
          create(GuestRequestSchema, {
            vmId: 'vm-1',
            timeoutMs: 5000,
            operation: {
              case: 'execute',
              value: create(ExecuteRequestSchema, { command: `touch ${marker}` }),
            },
          }),
        ),
      );
      await node.flush();
      const deadline = Date.now() + 5000;
      while (!errors.some((e) => e instanceof PermissionViolationError)) {
        if (Date.now() > deadline) {
          throw new Error(`no permissions violation for ${subject}: ${errors.join('; ')}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      const violation = errors.find(
        (e): e is PermissionViolationError => e instanceof PermissionViolationError,
      )!;
      expect([violation.operation, violation.subject]).toEqual(['publish', subject]);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await node.close();
    }
  });

  it('should stop everything on Ctrl-C and leave no process behind', async () => {
    const { code, leftover } = await stop(running!);
    expect(code).toBe(0);
    expect(leftover).toEqual([]);
    expect(running!.output()).toContain('Stopped.');
  });

  it('should keep users, inventory, audit history and the NATS credentials across a restart', async () => {
    const key = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const natsUsers = readFileSync(join(dataDir, 'nats', 'users.json'), 'utf8');
    running = await start(dataDir, httpPort, grpcPort);
    expect(running.output()).toContain(key);
    const get = async (path: string) =>
      (await (
        await fetch(`http://127.0.0.1:${httpPort}${path}`, {
          headers: { Authorization: `Bearer ${key}` },
        })
      ).json()) as Record<string, Array<Record<string, unknown>>>;
    const history = await get('/api/audit/executions?vm_id=vm-1');
    expect(history.executions?.some((e) => e.command === 'uname -a')).toBe(true);
    const projects = await get('/api/projects');
    expect(projects.projects?.find((p) => p.id === 'demo')).toMatchObject({ vm_count: 3 });
    const vms = await get('/api/vms');
    expect(vms.vms?.map((v) => [v.id, v.project_id])).toEqual([
      ['vm-1', 'demo'],
      ['vm-2', 'demo'],
      ['vm-3', 'demo'],
    ]);
    expect(readFileSync(join(dataDir, 'nats', 'users.json'), 'utf8')).toBe(natsUsers);
    const { code, leftover } = await stop(running);
    expect(code).toBe(0);
    expect(leftover).toEqual([]);
  }, 200_000);

  const qemu = qemuAvailable();
  (qemu.ok ? it : it.skip)(
    'should boot one real QEMU VM beside the simulated ones with --qemu',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'lq-start-qemu-'));
      const [http, grpc] = [await freePort(), await freePort()];
      const s = await start(dir, http, grpc, ['--qemu'], 360_000);
      try {
        const key = readFileSync(join(dir, 'admin-token'), 'utf8').trim();
        const res = await fetch(`http://127.0.0.1:${http}/api/vms/qemu-vm-1/execute`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ command: 'uname -r' }),
        });
        const body = (await res.json()) as { stdout: string };
        expect(res.status).toBe(200);
        // The guest's Debian kernel, not this machine's.
        expect(body.stdout.trim()).toMatch(/-amd64$/);
        const { code, leftover } = await stop(s);
        expect(code).toBe(0);
        expect(leftover).toEqual([]);
      } finally {
        if (s.proc.exitCode === null) {
          await stop(s);
        }
        rmSync(dir, { recursive: true, force: true });
      }
    },
    480_000,
  );
});
