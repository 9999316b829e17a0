import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { AuthService } from '@lq/auth';
import {
  AuthException,
  guestGrant,
  holdsAnywhere,
  holdsGlobally,
  isGlobalAdmin,
  obviousRunAsViolation,
  projectsWith,
} from '@lq/auth';
import type { RunListView, RunPreviewView, RunSummaryView, RunView } from '@lq/api';
import { nextCursor } from '../common/history-cursor.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { VmAccessService, type Caller } from '../access/vm-access.service.js';
import { actorOf } from '../audit/audit-actor.js';
import { GuestOperationRunner } from '../guest-ops/guest-operation.runner.js';
import { prepareExecution, type ExecuteInput } from '../guest-ops/operations/index.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { ExecutionsService, historyWindow, statesOf } from '../executions/executions.service.js';
import type { ExecutionState } from '../executions/executions.repository.js';
import { parseVmTarget, type VmTargetSpec } from '../inventory/labels.js';
import {
  RunsRepository,
  type ResumeTargetRow,
  type RunRow,
  type RunState,
  type TargetVm,
} from './runs.repository.js';
import { isTransientStartFailure, startRetryDelayMs } from './start-failure.js';
import { isDuplicateKey } from '../common/pg-errors.js';
import { walkIntentPages } from '../common/intent-pages.js';

const RUN_STATES: readonly RunState[] = ['running', 'succeeded', 'failed', 'stopped', 'cancelled'];

/** Runs one lease tick may adopt (the rest wait for the next tick, or another replica). */
const ADOPT_BATCH = 20;
/** Intents one sweep closes at a time (closeUnrecorded), then the next batch. */
const UNRECORDED_BATCH = 100;

/** A run's caller as stored with it: the authority an adopting replica starts its VMs with. */
interface StoredCaller {
  principal: Caller['principal'];
  requestId: string;
  sourceIp: string;
}

function storedCaller(caller: Caller): Record<string, unknown> {
  const stored: StoredCaller = {
    principal: caller.principal,
    requestId: caller.requestId,
    sourceIp: caller.sourceIp,
  };
  return { ...stored };
}

/**
 * The input an adopting replica may start the run's remaining VMs with: all of it but stdin and
 * env values, which are never stored; undefined when the run had some (it cannot be resumed).
 */
export function resumableInput(input: ExecuteInput): ExecuteInput | undefined {
  if ((input.stdin?.length ?? 0) > 0 || Object.keys(input.env ?? {}).length > 0) {
    return undefined;
  }
  const rest = { ...input };
  delete rest.stdin;
  delete rest.env;
  return rest;
}

/** GET /api/runs's query, as the DTO validated it. */
export interface RunListQuery {
  vm_id?: string;
  project?: string;
  state?: string;
  actor?: string;
  from?: string;
  to?: string;
  cursor?: string;
  limit?: number;
}

export type RunTarget = VmTargetSpec;

export interface RunSpec {
  target: RunTarget;
  input: ExecuteInput;
  /** A number, or a percentage of the targeted VMs ("10%"). */
  maxConcurrency: number | string;
  /** Stop starting new VMs once more than this many have failed; a number or a percentage. */
  maxErrors?: number | string;
}

/** A run as the API shows it (@lq/api). */
export type { RunView };

/** A count or a percentage of `total` (at least `min`). */
export function amountOf(
  field: string,
  value: number | string,
  total: number,
  min: number,
): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < min) {
      throw invalid(field, `must be a whole number ≥ ${min} or a percentage like "10%"`);
    }
    return value;
  }
  const m = /^(\d{1,3})%$/.exec(value.trim());
  if (!m || Number(m[1]) > 100) {
    throw invalid(field, `must be a whole number ≥ ${min} or a percentage like "10%"`);
  }
  return Math.max(min, Math.ceil((Number(m[1]) / 100) * total));
}

function invalid(field: string, message: string): VmGuestException {
  return new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, `${field} ${message}`);
}

interface Driving {
  queue: TargetVm[];
  inflight: Map<string, string>;
  /** VMs that failed (their execution, or a refused start): max_errors counts these. */
  errors: number;
  /** VMs whose start still failed for want of the store when its retries ran out. */
  unstarted: number;
  maxConcurrency: number;
  maxErrors: number | null;
  stopped: boolean;
  cancelled: boolean;
  caller: Caller;
  input: ExecuteInput;
  done: boolean;
}

/**
 * Fleet runs, the SSM Run Command shape: one command over VMs named by ids, a project or labels,
 * at most max_concurrency at a time, no new VM started once more than max_errors have failed.
 * Every VM is authorized on its own (a VM the caller may not touch is `denied`, audited, not
 * skipped in silence) and every execution is audited as usual, with the run id in its intent.
 */
@Injectable()
export class RunsService implements OnApplicationShutdown {
  private readonly log = new Logger('runs');
  private readonly driving = new Map<string, Driving>();
  /** execution id → run id, for the executions this replica's runs started. */
  private readonly runOf = new Map<string, string>();
  /** Executions of a run that ended before their start was recorded here (very short ones). */
  private readonly endedEarly = new Map<string, ExecutionState>();
  /** Starts in progress on this replica, and those waiting for a turn. */
  private startsInFlight = 0;
  private readonly startWaiters: Array<() => void> = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Up to when intents were looked through for a run never recorded (closeUnrecorded). */
  private unrecordedAfter: string | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  /** Start attempts that failed for want of the store and were tried again (a metric). */
  transientStarts = 0;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(RunsRepository) private readonly repo: RunsRepository,
    @Inject(ExecutionsService) private readonly executions: ExecutionsService,
    @Inject(GuestOperationRunner) private readonly runner: GuestOperationRunner,
    @Inject(VmAccessService) private readonly access: VmAccessService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(AuthService) private readonly auth: AuthService,
  ) {
    this.executions.events.on(
      'ended',
      (executionId: string, state: ExecutionState, runId: string | undefined) => {
        if (runId !== undefined && !this.runOf.has(executionId)) {
          // A run driven elsewhere (this replica adopted one of its executions) reads its
          // executions' ends from the store; only this replica's own starts wait here.
          if (this.driving.has(runId)) {
            this.endedEarly.set(executionId, state);
          }
        } else {
          this.onEnded(executionId, state);
        }
      },
    );
  }

  /**
   * Ends runs whose replica stopped (never `running` forever): every replica looks every
   * `intervalMs`; a run idle (no execution under way, no progress) past the start-retry window
   * and a minute is ended `failed`, its queued VMs skipped, with its audit outcome.
   */
  startSweep(intervalMs = 30_000): void {
    this.sweepTimer = setInterval(() => void this.sweep(), intervalMs);
    this.sweepTimer.unref();
    this.leaseTimer = setInterval(() => void this.leaseTick(), Math.ceil(this.config.leaseMs / 3));
    this.leaseTimer.unref();
  }

  stopSweep(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.leaseTimer);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopSweep();
    // The runs still going here are adopted by another replica at once, not after the lease.
    await this.repo.release(this.executions.replicaId).catch(() => undefined);
  }

  /**
   * Renews the leases of the runs this replica drives, notes the ends of their executions that
   * another replica drove (one that adopted them), and adopts runs whose replica died.
   */
  private async leaseTick(): Promise<void> {
    const owner = this.executions.replicaId;
    try {
      const ids = [...this.driving.keys()];
      if (ids.length > 0) {
        await this.repo.renew(owner, ids, this.config.leaseMs);
      }
      const inflight = [...this.runOf.keys()];
      if (inflight.length > 0) {
        for (const e of await this.executions.endedAmong(inflight)) {
          this.onEnded(e.id, e.status);
        }
      }
      for (const run of await this.repo.adoptExpired(owner, this.config.leaseMs, ADOPT_BATCH)) {
        await this.adopt(run).catch((err: Error) =>
          this.log.error(`run ${run.id}: not adopted: ${err.message}`),
        );
      }
    } catch {
      // the database is away; next time
    }
  }

  /**
   * Takes over a run whose replica died: follows its executions still under way (whichever
   * replica adopted them) to their real end, starts its VMs not started yet with the authority
   * and input its caller gave (unless the input had stdin or env values, which are not stored:
   * those VMs are skipped), and ends it with its one audit outcome, as its first replica would.
   */
  private async adopt(run: RunRow): Promise<void> {
    if (this.driving.has(run.id) || !run.caller) {
      return;
    }
    const stored = run.caller as unknown as StoredCaller;
    // Nothing more starts for a user who is gone or disabled since, or with a key since revoked;
    // what does start, starts with the user's bindings as they are now.
    const principal = await this.auth.principalNow(stored.principal);
    const caller: Caller = {
      principal: principal ?? stored.principal,
      requestId: stored.requestId,
      sourceIp: stored.sourceIp,
    };
    const input = (run.input ?? undefined) as ExecuteInput | undefined;
    const notStarted = !principal
      ? `not started: the run's caller ${stored.principal.username} is gone or disabled, or its API key was revoked or expired, since it began`
      : input === undefined
        ? 'not started: its control plane stopped, and the run’s stdin or env values are not stored for another to start it with'
        : undefined;
    const d: Driving = {
      queue: [],
      inflight: new Map(),
      errors: 0,
      unstarted: 0,
      maxConcurrency: run.max_concurrency,
      maxErrors: run.max_errors,
      stopped: !principal,
      cancelled: false,
      caller,
      input: input ?? {},
      done: false,
    };
    this.driving.set(run.id, d);
    this.log.warn(`run ${run.id}: its replica ${run.owner ?? '?'} stopped; adopted here`);
    try {
      for (const t of await this.repo.resumeTargets(run.id)) {
        await this.resumeTarget(run.id, d, t, notStarted, !principal);
      }
    } catch (err) {
      // Not driven here after all: its lease runs out again and it is adopted afresh.
      this.driving.delete(run.id);
      for (const [executionId, runId] of this.runOf) {
        if (runId === run.id) {
          this.runOf.delete(executionId);
        }
      }
      throw err;
    }
    this.checkBudget(d);
    void this.pump(run.id, d);
  }

  private async resumeTarget(
    runId: string,
    d: Driving,
    t: ResumeTargetRow,
    notStarted: string | undefined,
    stopped: boolean,
  ): Promise<void> {
    let state = t.state;
    let executionId = t.execution_id;
    let status = t.execution_status;
    if (state === 'queued' && t.started_execution_id) {
      // Its start was cut short after the execution began: it runs; never start it again.
      executionId = t.started_execution_id;
      status = t.started_execution_status;
      state = 'started';
      await this.repo.setTarget(runId, t.vm_id, 'started', executionId);
    }
    if (state === 'started' && executionId) {
      if (status === 'pending' || status === 'running') {
        d.inflight.set(executionId, t.vm_id);
        this.runOf.set(executionId, runId);
      } else if (status !== 'succeeded') {
        d.errors++;
      }
    } else if (state === 'failed_to_start') {
      d.errors++;
    } else if (state === 'queued') {
      if (notStarted !== undefined) {
        if (!stopped) {
          d.unstarted++;
        }
        await this.repo.setTarget(runId, t.vm_id, 'skipped', undefined, notStarted);
      } else if (t.project_id === null || t.node_id === null) {
        d.errors++;
        await this.repo.setTarget(
          runId,
          t.vm_id,
          'failed_to_start',
          undefined,
          'the VM left the inventory',
        );
      } else {
        d.queue.push({
          id: t.vm_id,
          project_id: t.project_id,
          node_id: t.node_id,
          agent_state: t.agent_state ?? '',
        });
      }
    }
  }

  /**
   * Intents of runs whose replica stopped after writing them and before recording the run
   * (create): nothing was started, and no replica would ever write their outcome. Once older
   * than a lease, each is recorded `failed` and given its outcome; the run row is the claim, so
   * a replica that records it after all is refused (and its caller answered 500), and of
   * several replicas sweeping, one writes it. Each replica looks through intents written since
   * its last look.
   */
  private async closeUnrecorded(): Promise<void> {
    try {
      await walkIntentPages(
        this.unrecordedAfter,
        UNRECORDED_BATCH,
        (after, limit) => this.repo.unrecordedIntents(after, this.config.leaseMs, limit),
        async (i) => {
          if (!(await this.repo.insertNeverStarted(i))) {
            return;
          }
          const error =
            'not started: its control plane stopped after writing its intent and before recording the run; no VM was started';
          this.log.warn(`run ${i.params.run_id}: ${error}`);
          await this.audit.record({
            kind: 'outcome',
            requestId: i.request_id,
            actor: i.actor,
            authMethod: i.auth_method,
            sourceIp: i.source_ip,
            operation: 'run',
            status: 'failed',
            error,
            params: { run_id: i.params.run_id, never_started: true, swept: true },
          });
        },
        (after) => {
          this.unrecordedAfter = after;
        },
      );
    } catch {
      // the database is away; next time, from where it stopped
    }
  }

  private async sweep(): Promise<void> {
    await this.closeUnrecorded();
    try {
      for (const run of await this.repo.abandoned(this.config.runStartRetryMs + 60_000)) {
        if (this.driving.has(run.id) || !(await this.repo.abandon(run.id))) {
          continue;
        }
        this.log.warn(`run ${run.id}: its control plane stopped; ended failed`);
        // The outcome pairs with the run's intent (its caller's request id, when stored).
        const stored = run.caller as unknown as StoredCaller | null | undefined;
        await this.audit.record({
          kind: 'outcome',
          requestId: stored?.requestId ?? randomUUID(),
          actor: run.actor,
          authMethod: '',
          sourceIp: '',
          operation: 'run',
          status: 'failed',
          error: 'the control plane driving the run stopped',
          params: { run_id: run.id, swept: true },
        });
      }
    } catch {
      // the database is away; next time
    }
  }

  /**
   * What a run would do, without doing it (lqctl run --dry-run): the VMs its target matches
   * among those the caller can see, each `would_run` or `denied` (with why) by the same grant
   * checks a run makes. Nothing is run, stored or audited.
   */
  async preview(spec: RunSpec, caller: Caller): Promise<RunPreviewView> {
    const target = parseVmTarget(spec.target, invalid);
    const { request } = prepareExecution(
      spec.input,
      this.runner.env,
      this.config.execAsyncTimeoutSeconds,
    );
    const vms = await this.repo.resolve(target, projectsWith(caller.principal, 'vm.read'));
    return {
      vms: vms.map((vm) => {
        const g = guestGrant(caller.principal, 'guest.exec', vm.project_id);
        const why = !g.granted
          ? g.why
          : g.grant.runAs && obviousRunAsViolation(g.grant.runAs, request.runAsUser);
        return {
          vm_id: vm.id,
          project_id: vm.project_id,
          agent_state: vm.agent_state,
          state: why ? 'denied' : 'would_run',
          error: why || null,
        };
      }),
      max_vms: this.config.runMaxVms,
    };
  }

  /**
   * Records the run whose intent is written. When that fails, nothing was started: its intent
   * gets its outcome here (503 to the caller), unless a sweep took the intent for one whose
   * replica had stopped (closeUnrecorded) and wrote the outcome already (the run row exists).
   */
  private async record(caller: Caller, id: string, insert: () => Promise<void>): Promise<void> {
    try {
      await insert();
    } catch (err) {
      const e = new VmGuestException(
        VmGuestErrorCode.STORE_UNAVAILABLE,
        `the run could not be recorded: ${(err as Error).message}; no VM was started`,
      );
      if (!isDuplicateKey(err)) {
        await this.audit
          .record({
            ...actorOf(caller.principal, caller),
            kind: 'outcome',
            operation: 'run',
            status: 'failed',
            error: e.message,
            params: { run_id: id, never_started: true },
          })
          .catch(() => undefined);
      }
      throw e;
    }
  }

  async create(spec: RunSpec, caller: Caller): Promise<RunView> {
    const target = parseVmTarget(spec.target, invalid);
    // Every VM's execution validates the same input again; a bad one is refused here, once.
    const { request, params } = prepareExecution(
      spec.input,
      this.runner.env,
      this.config.execAsyncTimeoutSeconds,
    );
    // Only VMs the caller can see are targets: the answer and the stored run never tell whether
    // another project's VM exists.
    const vms = await this.repo.resolve(target, projectsWith(caller.principal, 'vm.read'));
    if (vms.length === 0) {
      throw invalid('target', 'matches no VM you can see');
    }
    if (vms.length > this.config.runMaxVms) {
      throw invalid(
        'target',
        `matches ${vms.length} VMs; the limit is LQ_RUN_MAX_VMS ${this.config.runMaxVms}`,
      );
    }
    const maxConcurrency = amountOf('max_concurrency', spec.maxConcurrency, vms.length, 1);
    const maxErrors =
      spec.maxErrors === undefined ? null : amountOf('max_errors', spec.maxErrors, vms.length, 0);
    const id = randomUUID();
    await this.audit.intent({
      ...actorOf(caller.principal, caller),
      operation: 'run',
      params: {
        run_id: id,
        target: spec.target,
        ...params,
        max_concurrency: maxConcurrency,
        max_errors: maxErrors,
      },
    });
    await this.record(caller, id, () =>
      this.repo.insert(
        {
          id,
          actor: caller.principal.username,
          target: spec.target as Record<string, unknown>,
          request: params,
          max_concurrency: maxConcurrency,
          max_errors: maxErrors,
          owner: this.executions.replicaId,
          leaseMs: this.config.leaseMs,
          caller: storedCaller(caller),
          input: (resumableInput(spec.input) ?? null) as Record<string, unknown> | null,
        },
        vms.map((v) => v.id),
      ),
    );
    const allowed: TargetVm[] = [];
    for (const vm of vms) {
      try {
        await this.access.requireExec(
          caller,
          { vmId: vm.id, projectId: vm.project_id, nodeId: vm.node_id },
          request.runAsUser,
        );
        allowed.push(vm);
      } catch (err) {
        if (!(err instanceof AuthException)) {
          throw err;
        }
        await this.repo.setTarget(id, vm.id, 'denied', undefined, err.message);
      }
    }
    const d: Driving = {
      queue: allowed,
      inflight: new Map(),
      errors: 0,
      unstarted: 0,
      maxConcurrency,
      maxErrors,
      stopped: false,
      cancelled: false,
      caller,
      input: spec.input,
      done: false,
    };
    this.driving.set(id, d);
    void this.pump(id, d);
    return this.view(id);
  }

  /**
   * Runs, newest first: every run for a caller with a global audit.read or admin binding, its
   * own otherwise (the rule of GET /api/runs/:id). A caller that may neither run nor audit
   * anything is refused (403, audited).
   */
  async list(caller: Caller, q: RunListQuery): Promise<RunListView> {
    const p = caller.principal;
    if (!holdsAnywhere(p, 'guest.exec') && !holdsAnywhere(p, 'audit.read')) {
      const why = 'listing runs needs guest.exec or audit.read';
      await this.access.denyUnscoped(caller, 'guest.exec', 'run.list', why, q.project);
      throw AuthException.denied('guest.exec', '(or audit.read) on some project');
    }
    const everyone = holdsGlobally(p, 'audit.read') || isGlobalAdmin(p);
    const window = historyWindow(q, this.config.historyPageMax);
    let rows: Awaited<ReturnType<RunsRepository['list']>>;
    try {
      rows = await this.repo.list({
        onlyActor: everyone ? undefined : p.username,
        actor: q.actor,
        vmId: q.vm_id,
        projectId: q.project,
        states: statesOf<RunState>(q.state, RUN_STATES),
        ...window,
      });
    } catch (err) {
      throw new VmGuestException(
        VmGuestErrorCode.STORE_UNAVAILABLE,
        `runs cannot be read: ${(err as Error).message}`,
      );
    }
    const runs = rows.map((r): RunSummaryView => {
      const summary = r.summary ?? {};
      return {
        ...this.runFields(r),
        summary,
        vm_count: Object.values(summary).reduce((a, b) => a + b, 0),
      };
    });
    return { runs, next_cursor: nextCursor(rows, window.limit) };
  }

  async get(id: string, caller: Caller): Promise<RunView> {
    const run = await this.known(id);
    this.mayRead(run, caller);
    return this.view(id);
  }

  /** Stops a run: its own actor (still holding guest.exec) or a global admin, checked first. */
  async cancel(id: string, caller: Caller): Promise<RunView> {
    const run = await this.known(id);
    const p = caller.principal;
    if (!((run.actor === p.username && holdsAnywhere(p, 'guest.exec')) || isGlobalAdmin(p))) {
      const why = `run ${run.id} was started by ${run.actor}; only it or a global admin may cancel it`;
      await this.audit.record({
        kind: 'denied',
        ...actorOf(p, caller),
        operation: 'run.cancel',
        params: { permission: 'guest.exec', run_id: run.id },
        status: 'PERMISSION_DENIED',
        error: `missing guest.exec: ${why}`,
      });
      throw AuthException.denied('guest.exec', `(${why})`);
    }
    const d = this.driving.get(id);
    if (d && !d.done) {
      d.cancelled = true;
      // One cancel operation per execution, each under a request id of its own: its audit
      // intent and outcome pair up (one outcome per request id is a unique index).
      await Promise.all(
        [...d.inflight.keys()].map((executionId) =>
          this.executions
            .cancel(executionId, { ...caller, requestId: randomUUID() })
            .catch((err: Error) =>
              this.log.warn(`run ${id}: cancel of ${executionId}: ${err.message}`),
            ),
        ),
      );
      await this.maybeFinish(id, d);
    } else if (run.status === 'running') {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        `run ${id} is driven by another control-plane replica; cancel it there`,
      );
    }
    return this.view(id);
  }

  /** Summary and per-VM states. */
  async view(id: string): Promise<RunView> {
    const run = (await this.repo.get(id))!;
    const targets = await this.repo.targets(id);
    const summary: Record<string, number> = {};
    const vms = targets.map((t) => {
      const state = t.state === 'started' ? (t.execution_status ?? 'running') : t.state;
      summary[state] = (summary[state] ?? 0) + 1;
      return {
        vm_id: t.vm_id,
        state,
        execution_id: t.execution_id,
        exit_code: t.exit_code,
        error: t.error,
      };
    });
    return { ...this.runFields(run), summary, vms };
  }

  private runFields(run: RunRow): Omit<RunView, 'summary' | 'vms'> {
    return {
      id: run.id,
      actor: run.actor,
      status: run.status,
      target: run.target,
      command: typeof run.request.command === 'string' ? run.request.command : null,
      argv: Array.isArray(run.request.argv) ? (run.request.argv as string[]) : null,
      max_concurrency: run.max_concurrency,
      max_errors: run.max_errors,
      created_at: run.created_at.toISOString(),
      ended_at: run.ended_at?.toISOString() ?? null,
    };
  }

  /** Starts VMs while there is room, the budget holds and the run goes on. */
  private async pump(id: string, d: Driving): Promise<void> {
    while (!d.stopped && !d.cancelled && d.inflight.size < d.maxConcurrency && d.queue.length > 0) {
      const vm = d.queue.shift()!;
      // Reserve the slot before the start's round trips, so the limit holds while starting.
      const slot = `starting:${vm.id}`;
      d.inflight.set(slot, vm.id);
      void this.startOne(id, d, vm, slot);
    }
    await this.maybeFinish(id, d);
  }

  /**
   * Starts one VM's execution. A start that failed for want of the database or the audit trail
   * (overloaded, restarting) sent nothing to the guest: it waits and is tried again, up to
   * LQ_RUN_START_RETRY_MS, and never counts against max_errors. Starts of every run of this
   * replica take turns, LQ_RUN_STARTS_IN_FLIGHT at a time, so a run of thousands queues for the
   * connection pool instead of timing out in it.
   */
  private async startOne(id: string, d: Driving, vm: TargetVm, slot: string): Promise<void> {
    const deadline = Date.now() + this.config.runStartRetryMs;
    let execution: { id: string } | undefined;
    let failure: unknown;
    for (let attempt = 1; !d.cancelled; attempt++) {
      if (attempt > 1) {
        await sleep(startRetryDelayMs(attempt));
        if (d.cancelled) {
          break;
        }
      }
      await this.startTurn();
      try {
        execution = await this.executions.start(vm.id, d.input, d.caller, id);
        break;
      } catch (err) {
        failure = err;
      } finally {
        this.endTurn();
      }
      if (!isTransientStartFailure(failure) || Date.now() >= deadline) {
        break;
      }
      this.transientStarts++;
    }
    if (!execution) {
      d.inflight.delete(slot);
      const message = d.cancelled
        ? 'the run was cancelled before this VM started'
        : (failure as Error).message;
      if (d.cancelled) {
        // Never started: the run's end marks it skipped.
      } else if (isTransientStartFailure(failure)) {
        d.unstarted++;
      } else {
        d.errors++;
        this.checkBudget(d);
      }
      if (!d.cancelled) {
        await this.storeRetry(`run ${id}: VM ${vm.id} failed_to_start`, () =>
          this.repo.setTarget(id, vm.id, 'failed_to_start', undefined, message),
        );
      }
      void this.pump(id, d);
      return;
    }
    d.inflight.delete(slot);
    d.inflight.set(execution.id, vm.id);
    this.runOf.set(execution.id, id);
    // It runs: recording that may wait for the store, never start it again.
    await this.storeRetry(`run ${id}: VM ${vm.id} started`, () =>
      this.repo.setStarted(id, vm.id, execution.id),
    );
    const early = this.endedEarly.get(execution.id);
    if (early !== undefined) {
      this.endedEarly.delete(execution.id);
      this.onEnded(execution.id, early);
    }
  }

  /** Waits for one of this replica's LQ_RUN_STARTS_IN_FLIGHT start turns. */
  private async startTurn(): Promise<void> {
    if (this.startsInFlight < this.config.runStartsInFlight) {
      this.startsInFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.startWaiters.push(resolve));
  }

  /** Hands the turn to the next waiting start, if any. */
  private endTurn(): void {
    const next = this.startWaiters.shift();
    if (next) {
      next();
    } else {
      this.startsInFlight--;
    }
  }

  /** Retries a write of the run's state while the store is away (up to the retry window). */
  private async storeRetry(what: string, write: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + Math.max(this.config.runStartRetryMs, 1000);
    for (let attempt = 1; ; attempt++) {
      try {
        await write();
        return;
      } catch (err) {
        if (Date.now() >= deadline) {
          this.log.error(`${what}: not recorded: ${(err as Error).message}`);
          return;
        }
        await sleep(startRetryDelayMs(attempt + 1));
      }
    }
  }

  private onEnded(executionId: string, state: ExecutionState): void {
    const id = this.runOf.get(executionId);
    const d = id === undefined ? undefined : this.driving.get(id);
    if (!id || !d) {
      return;
    }
    this.runOf.delete(executionId);
    d.inflight.delete(executionId);
    if (state !== 'succeeded') {
      d.errors++;
      this.checkBudget(d);
    }
    void this.pump(id, d);
  }

  private checkBudget(d: Driving): void {
    if (d.maxErrors !== null && d.errors > d.maxErrors) {
      d.stopped = true;
    }
  }

  private async maybeFinish(id: string, d: Driving): Promise<void> {
    if (d.done || d.inflight.size > 0) {
      return;
    }
    if (d.queue.length > 0 && !d.stopped && !d.cancelled) {
      return;
    }
    d.done = true;
    const status: RunState = d.cancelled
      ? 'cancelled'
      : d.stopped
        ? 'stopped'
        : d.errors > 0 || d.unstarted > 0
          ? 'failed'
          : 'succeeded';
    await this.storeRetry(`run ${id}: end ${status}`, () => this.repo.finish(id, status));
    this.driving.delete(id);
    await this.audit.record({
      ...actorOf(d.caller.principal, d.caller),
      kind: 'outcome',
      operation: 'run',
      status,
      params: { run_id: id, errors: d.errors, unstarted: d.unstarted },
    });
  }

  private async known(id: string): Promise<RunRow> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) {
      throw invalid('run id', 'must be a UUID');
    }
    const run = await this.repo.get(id);
    if (!run) {
      throw new VmGuestException(VmGuestErrorCode.NOT_FOUND, `no run ${id}`);
    }
    return run;
  }

  private mayRead(run: RunRow, caller: Caller): void {
    const p = caller.principal;
    if (run.actor !== p.username && !holdsGlobally(p, 'audit.read') && !holdsGlobally(p, 'admin')) {
      throw AuthException.denied('audit.read', `(run ${run.id} was started by ${run.actor})`);
    }
  }
}
