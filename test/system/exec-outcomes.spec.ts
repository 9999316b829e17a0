// Issue 21, acceptance 2: one status vocabulary. Each way an execution can end (ok, exit 7,
// timeout, signal, cancelled, refused before start, agent lost) is run for real through the
// bundled lqctl against a real stack, and the API's status, lqctl's exit code and the audit
// view's status are checked against one table. A denial on a VM is found by filtering the
// audit trail by that VM.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { TEST_ADMIN_TOKEN } from '../support/control-plane-process.js';
import { runLqctl } from '../support/lqctl-process.js';
import { startOneNodeStack, type OneNodeStack } from '../support/one-node-stack.js';
import type { AuditEventsPage, AuditExecutionsPage, ExecutionStatusView } from '@lq/api';

interface Outcome {
  name: string;
  vm: string;
  /** lqctl's arguments after `exec VM`. */
  args: string[];
  /** What to do once this appears on stdout (--json output): interrupt lqctl, kill the agent. */
  onStarted?: 'interrupt' | 'kill-agent';
  exit: number;
  api: { status: string; exit_code?: number | null; signal?: string; refusal?: string | null };
  /** The audit view's status of the execution's outcome row. */
  audit: string;
}

const OUTCOMES: Outcome[] = [
  {
    name: 'ok',
    vm: 'vm-1',
    args: ['--', 'true'],
    exit: 0,
    api: { status: 'succeeded', exit_code: 0, refusal: null },
    audit: 'ok',
  },
  {
    name: 'exit 7',
    vm: 'vm-1',
    args: ['--', 'sh', '-c', 'exit 7'],
    exit: 7,
    api: { status: 'failed', exit_code: 7, refusal: null },
    audit: 'failed',
  },
  {
    name: 'timeout',
    vm: 'vm-1',
    args: ['--timeout', '1s', '--', 'sleep', '60'],
    exit: 124,
    api: { status: 'timed_out' },
    audit: 'timed_out',
  },
  {
    name: 'signal',
    vm: 'vm-1',
    args: ['--', 'sh', '-c', 'kill -9 $$'],
    exit: 137,
    api: { status: 'failed', signal: 'SIGKILL' },
    audit: 'failed',
  },
  {
    name: 'cancelled',
    vm: 'vm-1',
    args: ['--', 'sh', '-c', 'echo started; sleep 60'],
    onStarted: 'interrupt',
    exit: 130,
    api: { status: 'cancelled' },
    audit: 'cancelled',
  },
  {
    name: 'refused: command not found',
    vm: 'vm-1',
    args: ['--', 'lq-no-such-program'],
    exit: 127,
    api: { status: 'failed', exit_code: null, refusal: 'command_not_found' },
    audit: 'failed',
  },
  {
    name: 'refused: unusable working directory',
    vm: 'vm-1',
    args: ['--cwd', '/lq-no-such-dir', '--', 'true'],
    exit: 126,
    api: { status: 'failed', exit_code: null, refusal: 'command_not_executable' },
    audit: 'failed',
  },
  {
    name: 'refused: unknown user',
    vm: 'vm-1',
    args: ['-u', 'lq-no-such-user', '--', 'true'],
    exit: 1,
    api: { status: 'failed', exit_code: null, refusal: 'refused' },
    audit: 'failed',
  },
  {
    name: 'agent lost',
    vm: 'vm-2',
    args: ['--', 'sh', '-c', 'echo started; sleep 60'],
    onStarted: 'kill-agent',
    exit: 255,
    api: { status: 'agent_lost' },
    audit: 'agent_lost',
  },
];

describe('one status vocabulary: API, lqctl and the audit view agree on every outcome', () => {
  let stack: OneNodeStack;
  let work: string;
  const ids = new Map<string, string>();

  function lqctl(
    args: string[],
    onStdout?: (all: string, kill: (s: NodeJS.Signals) => void) => void,
  ) {
    return runLqctl(args, {
      env: {
        LQ_SERVER: stack.cp.url,
        LQ_TOKEN: TEST_ADMIN_TOKEN,
        LQCTL_CONFIG: join(work, 'config.json'),
      },
      onStdout,
    });
  }

  async function get<T>(path: string, token = TEST_ADMIN_TOKEN): Promise<T> {
    const res = await fetch(`${stack.cp.url}${path}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-outcomes-'));
    stack = await startOneNodeStack({
      name: 'outcomes',
      vms: 2,
      // The killed agent does not come back: give it a short grace before agent_lost.
      cpEnv: { LQ_EXEC_LOST_GRACE_MS: '1000' },
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it.each(OUTCOMES.map((o) => [o.name, o] as const))(
    'should agree on %s',
    async (_, o) => {
      let acted = false;
      const r = await lqctl(['--json', 'exec', o.vm, ...o.args], (all, kill) => {
        if (!acted && o.onStarted && all.includes('"text":"started\\n"')) {
          acted = true;
          if (o.onStarted === 'interrupt') {
            kill('SIGINT');
          } else {
            void stack.sim.kill(o.vm, 'SIGKILL');
          }
        }
      });
      const events = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event: string; id?: string });
      const id = events[0]?.id;
      expect(events[0]?.event).toBe('started');
      ids.set(o.name, id!);
      expect([o.name, r.code]).toEqual([o.name, o.exit]);

      const view = await get<ExecutionStatusView>(`/api/executions/${id}`);
      expect(view).toMatchObject(o.api);
      expect(events.at(-1)).toMatchObject({ event: 'end', ...o.api });

      // The outcome row may trail the answer by LQ_AUDIT_OUTCOME_WAIT_MS: wait for it.
      let status: string | null | undefined;
      for (let i = 0; i < 100 && !status; i++) {
        const page = await get<AuditExecutionsPage>(`/api/audit/executions?vm_id=${o.vm}&limit=50`);
        status = page.executions.find((e) => e.request_id === id)?.status;
        if (!status) {
          await sleep(200);
        }
      }
      expect([o.name, status]).toEqual([o.name, o.audit]);
    },
    60_000,
  );

  it('should count every outcome but ok as an error in the audit filter', async () => {
    const page = await get<AuditExecutionsPage>('/api/audit/executions?outcome=error&limit=100');
    const errors = new Set(page.executions.map((e) => e.request_id));
    for (const o of OUTCOMES) {
      expect([o.name, errors.has(ids.get(o.name)!)]).toEqual([o.name, o.audit !== 'ok']);
    }
  });

  it('should exit 127 with --sync when the command is not found', async () => {
    const r = await lqctl(['exec', '--sync', 'vm-1', '--', 'lq-no-such-program']);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/refused to start the command: .*not found.*\(exit 127\)/);
  });

  it('should refuse a timeout above the server maximum in the caller’s terms', async () => {
    for (const args of [
      ['exec', 'vm-1', '--timeout', '2h', '--', 'true'],
      ['exec', '--sync', 'vm-1', '--timeout', '2h', '--', 'true'],
      ['run', '--vms', 'vm-1', '--timeout', '2h', '--', 'true'],
    ]) {
      const r = await lqctl(args);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 2]);
      expect(r.stderr).toContain('lqctl: --timeout 2h exceeds the server maximum 1h');
    }
    const res = await fetch(`${stack.cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ argv: ['true'], timeout_seconds: '30' }),
    });
    expect([res.status, ((await res.json()) as { message: string }).message]).toEqual([
      400,
      'timeout_seconds must be a whole number of seconds',
    ]);
  });

  it('should record the VM and the route pattern on a denial, so filtering by VM finds it', async () => {
    const admin = (method: string, path: string, body: unknown) =>
      fetch(`${stack.cp.url}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      }).then((res) => res.json() as Promise<{ token: string }>);
    await admin('POST', '/api/users', { username: 'outcomes-viewer' });
    await admin('POST', '/api/role-bindings', { user: 'outcomes-viewer', role: 'viewer' });
    const { token } = await admin('POST', '/api/users/outcomes-viewer/api-keys', {});
    const denied = await fetch(`${stack.cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ argv: ['true'] }),
    });
    expect(denied.status).toBe(403);
    const page = await get<AuditEventsPage>(
      '/api/audit/events?vm_id=vm-1&kind=denied&actor=outcomes-viewer',
    );
    expect(page.events.map((e) => [e.vm_id, e.operation, e.status])).toEqual([
      ['vm-1', 'POST /api/vms/:id/execute', 'PERMISSION_DENIED'],
    ]);
  });
});
