// Issue 21, acceptance 1: operators' history against real parts (control plane, nats-server,
// node daemon, simulated VMs with real agents, PostgreSQL) and the bundled lqctl. An operator of
// proj-a lists its executions and runs and never another project's, shows one, follows a
// running one's output, and prints a fleet run's per-VM output; a caller with no exec or audit
// binding is refused (403) and the refusal is audited.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TEST_ADMIN_TOKEN } from '../support/control-plane-process.js';
import { runLqctl, type LqctlRun } from '../support/lqctl-process.js';
import { startOneNodeStack, type OneNodeStack } from '../support/one-node-stack.js';
import type {
  AuditEventsPage,
  ExecutionListView,
  ExecutionStartedView,
  ExecutionView,
  RunListView,
  RunView,
} from '@lq/api';

describe('operators’ history (GET /api/executions, /api/runs, lqctl exec ls|show|logs, runs)', () => {
  let stack: OneNodeStack;
  let work: string;
  const keys: Record<'opA' | 'opB' | 'viewer', string> = { opA: '', opB: '', viewer: '' };

  async function api<T>(
    token: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${stack.cp.url}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  async function admin<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await api<T>(TEST_ADMIN_TOKEN, method, path, body);
    if (r.status >= 300) {
      throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.body;
  }

  function lqctl(
    token: string,
    args: string[],
    onStdout?: (all: string) => void,
  ): Promise<LqctlRun> {
    return runLqctl(args, {
      env: {
        LQ_SERVER: stack.cp.url,
        LQ_TOKEN: token,
        LQCTL_CONFIG: join(work, 'config.json'),
      },
      onStdout,
    });
  }

  async function userWithKey(name: string, role: string, project?: string): Promise<string> {
    await admin('POST', '/api/users', { username: name });
    await admin('POST', '/api/role-bindings', { user: name, role, project });
    return (await admin<{ token: string }>('POST', `/api/users/${name}/api-keys`, {})).token;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-history-'));
    stack = await startOneNodeStack({ name: 'history', vms: 3 });
    for (const p of ['proj-a', 'proj-b']) {
      await admin('POST', '/api/projects', { id: p });
    }
    for (const [vm, p] of [
      ['vm-1', 'proj-a'],
      ['vm-2', 'proj-a'],
      ['vm-3', 'proj-b'],
    ] as const) {
      await admin('PUT', `/api/vms/${vm}/project`, { project: p });
    }
    keys.opA = await userWithKey('op-a', 'operator', 'proj-a');
    keys.opB = await userWithKey('op-b', 'operator', 'proj-b');
    keys.viewer = await userWithKey('just-a-viewer', 'viewer');
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('should list, show and print the output of an operator’s executions, and not another project’s', async () => {
    const a = await lqctl(keys.opA, ['exec', 'vm-1', '--', 'sh', '-c', 'echo hello-a; exit 3']);
    expect([a.code, a.stdout]).toEqual([3, 'hello-a\n']);
    const b = await lqctl(keys.opB, ['exec', 'vm-3', '--', 'echo', 'hello-b']);
    expect(b.code).toBe(0);

    const ls = await lqctl(keys.opA, ['exec', 'ls', '-o', 'json']);
    expect(ls.code).toBe(0);
    const mine = JSON.parse(ls.stdout) as ExecutionView[];
    expect(mine.map((e) => [e.vm_id, e.actor, e.status, e.exit_code])).toEqual([
      ['vm-1', 'op-a', 'failed', 3],
    ]);
    // The API itself scopes, whatever the filters ask.
    const viaApi = await api<ExecutionListView>(keys.opA, 'GET', '/api/executions?vm_id=vm-3');
    expect([viaApi.status, viaApi.body.executions]).toEqual([200, []]);
    const everyone = await api<ExecutionListView>(TEST_ADMIN_TOKEN, 'GET', '/api/executions');
    expect(everyone.body.executions.map((e) => e.vm_id).sort()).toEqual(['vm-1', 'vm-3']);
    // Naming the other project is a refusal, not an empty page.
    const other = await lqctl(keys.opA, ['exec', 'ls', '--project', 'proj-b']);
    expect(other.code).toBe(5);
    expect(other.stderr).toMatch(/permission denied.*proj-b/);

    const table = await lqctl(keys.opA, ['exec', 'ls', '--state', 'failed']);
    expect(table.stdout).toMatch(/^ID +VM +ACTOR +COMMAND +STATUS +EXIT/);
    expect(table.stdout).toMatch(new RegExp(`^${mine[0]!.id} +vm-1 +op-a +.*failed +3 `, 'm'));
    const names = await lqctl(keys.opA, ['exec', 'ls', '-o', 'name']);
    expect(names.stdout).toBe(`${mine[0]!.id}\n`);

    const show = await lqctl(keys.opA, ['exec', 'show', mine[0]!.id]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^status: +failed$/m);
    expect(show.stdout).toMatch(/^exit code: +3$/m);
    const logs = await lqctl(keys.opA, ['exec', 'logs', mine[0]!.id]);
    expect([logs.code, logs.stdout]).toEqual([0, 'hello-a\n']);
    // Another project's execution: refused.
    const theirs = everyone.body.executions.find((e) => e.vm_id === 'vm-3')!;
    expect((await lqctl(keys.opA, ['exec', 'logs', theirs.id])).code).toBe(5);
  });

  it('should follow a running execution’s output to its end and exit with its exit code', async () => {
    const gate = join(work, 'gate');
    const started = await api<ExecutionStartedView>(keys.opA, 'POST', '/api/vms/vm-2/executions', {
      argv: [
        'sh',
        '-c',
        `echo waiting; while [ ! -f '${gate}' ]; do sleep 0.1; done; echo through; exit 4`,
      ],
    });
    expect(started.status).toBe(202);
    let opened = false;
    const followed = await lqctl(keys.opA, ['exec', 'logs', '-f', started.body.id], (all) => {
      // The command is still waiting when lqctl prints its first line: open the gate.
      if (!opened && all.includes('waiting\n')) {
        opened = true;
        writeFileSync(gate, '');
      }
    });
    expect(existsSync(gate)).toBe(true);
    expect([followed.code, followed.stdout]).toEqual([4, 'waiting\nthrough\n']);
  });

  it('should print each VM’s output of a fleet run, and list runs per caller', async () => {
    const run = await lqctl(keys.opA, [
      'run',
      '--project',
      'proj-a',
      '--show-output',
      '--',
      'sh',
      '-c',
      'echo from-the-run; echo to-stderr >&2',
    ]);
    expect(run.code).toBe(0);
    for (const vm of ['vm-1', 'vm-2']) {
      expect(run.stdout).toContain(
        `=== ${vm}: succeeded (exit 0)\nfrom-the-run\n--- stderr\nto-stderr\n`,
      );
    }
    const id = /run ([0-9a-f-]{36}) succeeded/.exec(run.stdout)?.[1];
    expect(id).toBeDefined();

    const shown = await lqctl(keys.opA, ['runs', 'show', id!, '--show-output', '-o', 'json']);
    const view = JSON.parse(shown.stdout) as Omit<RunView, 'vms'> & {
      vms: Array<{ vm_id: string; state: string; stdout: string }>;
    };
    expect(view.vms.map((v) => [v.vm_id, v.state, v.stdout])).toEqual([
      ['vm-1', 'succeeded', 'from-the-run\n'],
      ['vm-2', 'succeeded', 'from-the-run\n'],
    ]);

    const mine = await lqctl(keys.opA, ['runs', 'ls', '-o', 'name']);
    expect([mine.code, mine.stdout]).toEqual([0, `${id}\n`]);
    const theirs = await api<RunListView>(keys.opB, 'GET', '/api/runs');
    expect([theirs.status, theirs.body.runs]).toEqual([200, []]);
    const all = await api<RunListView>(TEST_ADMIN_TOKEN, 'GET', '/api/runs?project=proj-a');
    expect(all.body.runs.map((r) => [r.id, r.status, r.vm_count])).toEqual([[id, 'succeeded', 2]]);
    const executions = await api<ExecutionListView>(
      keys.opA,
      'GET',
      `/api/executions?run_id=${id}`,
    );
    expect(executions.body.executions.map((e) => e.vm_id).sort()).toEqual(['vm-1', 'vm-2']);
  });

  it('should page with a cursor without skipping or repeating', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : '';
      const page = await api<ExecutionListView>(
        TEST_ADMIN_TOKEN,
        'GET',
        `/api/executions?limit=1${q}`,
      );
      expect(page.status).toBe(200);
      seen.push(...page.body.executions.map((e) => e.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    const whole = await api<ExecutionListView>(TEST_ADMIN_TOKEN, 'GET', '/api/executions');
    expect(seen).toEqual(whole.body.executions.map((e) => e.id));
    expect(seen.length).toBeGreaterThanOrEqual(5);
    const bad = await api<{ message: string }>(TEST_ADMIN_TOKEN, 'GET', '/api/executions?cursor=x');
    expect([bad.status, bad.body.message]).toEqual([
      400,
      'cursor must be the next_cursor of a previous page',
    ]);
  });

  it('should refuse a caller with no exec or audit binding, and audit the refusal', async () => {
    for (const [path, operation] of [
      ['/api/executions', 'execution.list'],
      ['/api/runs', 'run.list'],
    ] as const) {
      const r = await api<{ code: string }>(keys.viewer, 'GET', path);
      expect([r.status, r.body.code]).toEqual([403, 'PERMISSION_DENIED']);
      const audit = await admin<AuditEventsPage>(
        'GET',
        `/api/audit/events?kind=denied&actor=just-a-viewer&operation=${operation}`,
      );
      expect(audit.events.length).toBe(1);
    }
    const cli = await lqctl(keys.viewer, ['runs', 'ls']);
    expect(cli.code).toBe(5);
  });
});
