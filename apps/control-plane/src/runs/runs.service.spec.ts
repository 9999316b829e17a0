// The run service's start policy (issue 18 item 10), with its collaborators replaced by
// in-memory doubles: a start that failed for want of the store (pool timeout, audit trail
// unavailable) is tried again and never counts against max_errors; a refusal does; starts of
// a run wait their turn (LQ_RUN_STARTS_IN_FLIGHT) whatever its max_concurrency. The real stack
// under load is bench/fleet.ts; real runs end to end are test/system/runs.e2e.spec.ts.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from '@jest/globals';
import { AuditErrorCode, AuditException, type AuditRecord } from '@lq/audit';
import type { AuthService, Principal } from '@lq/auth';
import { parseControlPlaneEnv } from '../config/env.schema.js';
import type { Caller } from '../common/caller.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import type { ExecutionsService } from '../executions/executions.service.js';
import type { GuestOperationRunner } from '../guest-ops/guest-operation.runner.js';
import type { VmAccessService } from '../access/vm-access.service.js';
import type { AuditService } from '@lq/audit';
import type { RunRow, RunState, RunsRepository, TargetState, TargetVm } from './runs.repository.js';
import { RunsService } from './runs.service.js';
import { isTransientStartFailure } from './start-failure.js';

const VMS = 12;

const admin: Principal = {
  userId: 'u1',
  username: 'admin',
  authMethod: 'jwt',
  bindings: [{ role: 'admin', projectId: null, restrictions: {} }],
};
const caller: Caller = { principal: admin, requestId: 'r-1', sourceIp: '127.0.0.1' };

/** The failures a start meets when the store is overloaded or restarting. */
const TRANSIENT: Array<() => Error> = [
  () => new Error('timeout exceeded when trying to connect'),
  () => new AuditException(AuditErrorCode.AUDIT_UNAVAILABLE, 'the audit trail cannot be written'),
  () => new VmGuestException(VmGuestErrorCode.STORE_UNAVAILABLE, 'could not be recorded'),
];

function harness(opts: {
  /** What start attempt `n` (1, 2, …) of a VM throws, or undefined to start it. */
  fail: (vmId: string, attempt: number) => Error | undefined;
  startsInFlight?: number;
  /** A run the sweep finds left by a stopped replica. */
  abandoned?: RunRow;
}) {
  const config = parseControlPlaneEnv({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/lq',
    LQ_RUN_STARTS_IN_FLIGHT: String(opts.startsInFlight ?? 3),
    LQ_RUN_START_RETRY_MS: '60000',
  });
  const vms: TargetVm[] = Array.from({ length: VMS }, (_, i) => ({
    id: `vm-${i}`,
    project_id: 'p',
    node_id: 'n',
    agent_state: 'ready',
  }));
  const targets = new Map<string, { state: TargetState; execution_id?: string; error?: string }>();
  let run: RunRow | undefined;
  const repo = {
    resolve: async () => vms,
    insert: async (r: Omit<RunRow, 'created_at' | 'ended_at' | 'status'>, ids: string[]) => {
      run = { ...r, status: 'running', created_at: new Date(), ended_at: null };
      for (const id of ids) {
        targets.set(id, { state: 'queued' });
      }
    },
    setTarget: async (
      _: string,
      vmId: string,
      state: TargetState,
      executionId?: string,
      error?: string,
    ) => {
      targets.set(vmId, { state, execution_id: executionId, error });
    },
    setStarted: async (_: string, vmId: string, executionId: string) => {
      targets.set(vmId, { state: 'started', execution_id: executionId });
    },
    finish: async (_: string, status: RunState) => {
      for (const t of targets.values()) {
        if (t.state === 'queued') {
          t.state = 'skipped';
        }
      }
      run = { ...run!, status, ended_at: new Date() };
    },
    get: async () => run,
    abandoned: async () => (opts.abandoned ? [opts.abandoned] : []),
    abandon: async (id: string) => id === opts.abandoned?.id,
    targets: async () =>
      [...targets].map(([vm_id, t]) => ({
        vm_id,
        state: t.state,
        execution_id: t.execution_id ?? null,
        error: t.error ?? null,
        execution_status: t.state === 'started' ? 'succeeded' : null,
        exit_code: null,
      })),
  };
  const attempts = new Map<string, number>();
  const started: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const events = new EventEmitter();
  const executions = {
    events,
    start: async (vmId: string, _input: unknown, _caller: Caller, runId: string) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await sleep(2);
        const n = (attempts.get(vmId) ?? 0) + 1;
        attempts.set(vmId, n);
        const err = opts.fail(vmId, n);
        if (err) {
          throw err;
        }
        const id = `exec-${vmId}`;
        started.push(vmId);
        setImmediate(() => events.emit('ended', id, 'succeeded', runId));
        return { id };
      } finally {
        inFlight--;
      }
    },
  };
  const records: AuditRecord[] = [];
  const audit = {
    intent: async () => undefined,
    record: async (r: AuditRecord) => void records.push(r),
  };
  const runner = { env: { config, timeoutMs: () => 30_000 } };
  const access = { requireExec: async () => undefined };
  const service = new RunsService(
    config,
    repo as unknown as RunsRepository,
    executions as unknown as ExecutionsService,
    runner as unknown as GuestOperationRunner,
    access as unknown as VmAccessService,
    audit as unknown as AuditService,
    { principalNow: async (p: unknown) => p } as unknown as AuthService,
  );
  const ended = async (id: string) => {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(10)) {
      const view = await service.view(id);
      if (view.status !== 'running') {
        return view;
      }
    }
    throw new Error('the run did not end');
  };
  return {
    service,
    ended,
    attempts,
    started,
    records,
    maxInFlight: () => maxInFlight,
  };
}

const spec = (maxErrors?: number) => ({
  target: { project: 'p' },
  input: { argv: ['/bin/true'] },
  maxConcurrency: '100%',
  maxErrors,
});

describe('RunsService starts', () => {
  it('should retry starts that failed for want of the store, counting none as errors', async () => {
    // Every VM's first two attempts fail, each with another transient failure.
    const h = harness({
      fail: (_vm, n) => (n <= 2 ? TRANSIENT[(n - 1) % TRANSIENT.length]!() : undefined),
    });
    const created = await h.service.create(spec(0), caller);
    const view = await h.ended(created.id);
    expect(view.status).toBe('succeeded');
    expect(view.summary).toEqual({ succeeded: VMS });
    // Each VM started exactly once, after its two failed attempts.
    expect(h.started.sort()).toEqual(view.vms.map((v) => v.vm_id).sort());
    expect([...h.attempts.values()]).toEqual(Array(VMS).fill(3));
    expect(h.service.transientStarts).toBe(2 * VMS);
    const outcome = h.records.find((r) => r.operation === 'run' && r.kind === 'outcome');
    expect(outcome?.status).toBe('succeeded');
    expect(outcome?.params).toMatchObject({ errors: 0, unstarted: 0 });
  });

  it('should count a refused start against max_errors and stop the run', async () => {
    const h = harness({
      startsInFlight: 1,
      fail: (vm) =>
        vm === 'vm-0'
          ? new VmGuestException(VmGuestErrorCode.AGENT_NOT_CONNECTED, 'agent is gone')
          : undefined,
    });
    const created = await h.service.create({ ...spec(0), maxConcurrency: 1 }, caller);
    const view = await h.ended(created.id);
    expect(view.status).toBe('stopped');
    expect(h.attempts.get('vm-0')).toBe(1);
    expect(view.vms.find((v) => v.vm_id === 'vm-0')).toMatchObject({
      state: 'failed_to_start',
      error: 'agent is gone',
    });
    expect(view.summary.skipped).toBe(VMS - 1);
  });

  it('should keep starts in flight within LQ_RUN_STARTS_IN_FLIGHT at 100% concurrency', async () => {
    const h = harness({ startsInFlight: 2, fail: () => undefined });
    const created = await h.service.create(spec(), caller);
    expect((await h.ended(created.id)).status).toBe('succeeded');
    expect(h.started).toHaveLength(VMS);
    expect(h.maxInFlight()).toBeLessThanOrEqual(2);
  });
});

describe('RunsService sweep', () => {
  it('should end a run whose replica stopped, with its audit outcome', async () => {
    const left: RunRow = {
      id: '6f0c3c1e-8f5e-4b43-9d55-2d7a3f0b8a11',
      actor: 'bob',
      target: { project: 'p' },
      request: { argv: ['/bin/true'] },
      max_concurrency: 10,
      max_errors: null,
      status: 'running',
      created_at: new Date(0),
      ended_at: null,
    };
    const h = harness({ fail: () => undefined, abandoned: left });
    h.service.startSweep(10);
    try {
      for (const deadline = Date.now() + 10_000; h.records.length === 0; await sleep(10)) {
        if (Date.now() > deadline) {
          throw new Error('no sweep outcome');
        }
      }
    } finally {
      h.service.stopSweep();
    }
    expect(h.records[0]).toMatchObject({
      kind: 'outcome',
      operation: 'run',
      actor: 'bob',
      status: 'failed',
      params: { run_id: left.id, swept: true },
    });
  });
});

describe('isTransientStartFailure', () => {
  it.each([
    ['a pool timeout', true, new Error('timeout exceeded when trying to connect')],
    ['a server shutting down', true, Object.assign(new Error('shutting down'), { code: '57P01' })],
    ['too many clients', true, Object.assign(new Error('too many clients'), { code: '53300' })],
    ['the audit trail away', true, new AuditException(AuditErrorCode.AUDIT_UNAVAILABLE, 'down')],
    ['the store away', true, new VmGuestException(VmGuestErrorCode.STORE_UNAVAILABLE, 'down')],
    ['no agent', false, new VmGuestException(VmGuestErrorCode.AGENT_NOT_CONNECTED, 'gone')],
    ['bad input', false, new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, 'bad')],
    ['a constraint', false, Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['not an error', false, 'a string'],
  ])('%s is transient: %s', (_name, transient, err) => {
    expect(isTransientStartFailure(err)).toBe(transient);
  });
});
