import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { AuthException, guestGrant, isGlobalAdmin, projectsWith } from '@lq/auth';
import type { ExecutionListView } from '@lq/api';
import type { ExecuteRequest, ExecuteResponse } from '@lq/proto';
import { VmAccessService, runAsLimitsOf } from '../access/vm-access.service.js';
import type { Caller } from '../common/caller.js';
import { decodeCursor, nextCursor } from '../common/history-cursor.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import type { GuestOperationSpec } from '../guest-ops/guest-operation.js';
import { GuestOperationRunner, storedIntentOf } from '../guest-ops/guest-operation.runner.js';
import {
  EXECUTE_CANCEL,
  executeOutcome,
  prepareExecution,
  type ExecuteInput,
} from '../guest-ops/operations/index.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { InventoryErrorCode, InventoryException } from '../inventory/inventory.exception.js';
import { ExecutionDriver } from './execution-driver.js';
import { ExecutionFollower, OUTPUT_PAGE } from './execution-follower.js';
import { executionView, type ExecutionView, type FollowSink } from './execution-view.js';
import {
  EXECUTION_STATES,
  ExecutionsRepository,
  FINAL_STATES,
  type ExecutionRow,
  type ExecutionState,
  type OutputChunk,
} from './executions.repository.js';
import { isDuplicateKey } from '../common/pg-errors.js';

/** GET /api/executions's query, as the DTO validated it. */
export interface ExecutionListQuery {
  vm_id?: string;
  project?: string;
  state?: string;
  actor?: string;
  run_id?: string;
  from?: string;
  to?: string;
  cursor?: string;
  limit?: number;
}

/** The projects whose executions `caller` may read: guest.exec or audit.read there. */
export function readableProjects(caller: Caller): 'all' | string[] {
  const exec = projectsWith(caller.principal, 'guest.exec');
  const audit = projectsWith(caller.principal, 'audit.read');
  return exec === 'all' || audit === 'all' ? 'all' : [...new Set([...exec, ...audit])];
}

function invalidQuery(message: string): VmGuestException {
  return new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, message);
}

/** from, to, cursor and limit of a history page, checked; `pageMax` bounds the limit. */
export function historyWindow(
  q: { from?: string; to?: string; cursor?: string; limit?: number },
  pageMax: number,
) {
  const from = q.from === undefined ? undefined : new Date(q.from);
  const to = q.to === undefined ? undefined : new Date(q.to);
  if (from && to && from > to) {
    throw invalidQuery('from must not be after to');
  }
  const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
  if (q.cursor !== undefined && after === undefined) {
    throw invalidQuery('cursor must be the next_cursor of a previous page');
  }
  if (q.limit !== undefined && q.limit > pageMax) {
    throw invalidQuery(`limit must be at most ${pageMax} (LQ_HISTORY_PAGE_MAX)`);
  }
  return { from, to, after, limit: q.limit ?? 50 };
}

/** "failed,timed_out" → the states, each checked against `known`. */
export function statesOf<S extends string>(text: string | undefined, known: readonly S[]) {
  if (text === undefined) {
    return undefined;
  }
  const states = text.split(',');
  const unknown = states.find((s) => !(known as readonly string[]).includes(s));
  if (unknown !== undefined) {
    throw invalidQuery(`state ${unknown} is not one of ${known.join(', ')}`);
  }
  return states as S[];
}

export { executionView, type ExecutionView, type FollowSink };

/**
 * A cancel that failed on its way to the agent or back (no daemon, a timeout, the agent gone, a
 * lost reply), as opposed to one refused before anything was sent: those still end the
 * execution.
 */
function deliveryFailure(err: unknown): boolean {
  if (err instanceof InventoryException) {
    // The VM left the inventory: nothing will ever answer for it.
    return err.code === InventoryErrorCode.VM_NOT_FOUND;
  }
  if (!(err instanceof VmGuestException)) {
    return false;
  }
  return ![VmGuestErrorCode.INVALID_REQUEST, VmGuestErrorCode.STORE_UNAVAILABLE].includes(err.code);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * An asynchronous execution through the one audited path: like a synchronous execute (guest.exec
 * and the run-as limits, intent before anything leaves), with the long default timeout, its
 * output streamed under its id, and a refusal before the intent when the agent is not connected.
 */
function asyncExecuteSpec(
  executionId: string,
  defaultSeconds: number,
  recorded: { request?: ExecuteRequest },
): GuestOperationSpec<ExecuteInput, ExecuteResponse> {
  return {
    name: 'execute',
    permission: 'guest.exec',
    prepare: (input, env) => {
      const { request, params } = prepareExecution(input, env, defaultSeconds);
      request.executionId = executionId;
      request.streamOutput = true;
      recorded.request = request;
      return {
        params,
        runAsUser: request.runAsUser,
        check: (where, vmId) => {
          if (where.agentState !== 'ready') {
            throw new VmGuestException(
              VmGuestErrorCode.AGENT_NOT_CONNECTED,
              `the guest agent of VM ${vmId} is ${where.agentState}`,
            );
          }
        },
        // The ExecutionDriver dispatches it, after the execution's row is recorded.
        dispatch: () => Promise.reject(new Error('dispatched by the ExecutionDriver')),
        outcome: (r) => executeOutcome(r, env.config.audit.outputMaxBytes),
      };
    },
  };
}

/**
 * Asynchronous executions, the API side: started at once (202) through the audited path,
 * their status read by anyone with guest.exec or audit.read on their project, their output by
 * their actor or with audit.read_output there, cancelled by their
 * actor (or a caller without run-as limits there, or a global admin). ExecutionDriver runs them;
 * ExecutionFollower streams their output.
 */
@Injectable()
export class ExecutionsService {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(GuestOperationRunner) private readonly runner: GuestOperationRunner,
    @Inject(VmAccessService) private readonly access: VmAccessService,
    @Inject(ExecutionsRepository) private readonly repo: ExecutionsRepository,
    @Inject(ExecutionDriver) private readonly driver: ExecutionDriver,
    @Inject(ExecutionFollower) private readonly follower: ExecutionFollower,
  ) {}

  /** 'ended' (executionId, state, runId?) for each execution this replica drove to its end. */
  get events() {
    return this.driver.events;
  }

  /** This replica as the owner of the executions and runs it drives. */
  get replicaId(): string {
    return this.driver.replicaId;
  }

  /** Which of these executions have ended (whichever replica drove them). */
  endedAmong(ids: string[]): Promise<Array<{ id: string; status: ExecutionState }>> {
    return this.repo.endedStates(ids);
  }

  /**
   * Validates, authorizes (guest.exec and the bindings' limits on the VM's project), writes the
   * audit intent, records the execution and hands it to the driver; resolves once under way.
   */
  async start(
    vmId: string,
    input: ExecuteInput,
    caller: Caller,
    runId?: string,
  ): Promise<ExecutionView> {
    const id = randomUUID();
    const recorded: { request?: ExecuteRequest } = {};
    const spec = asyncExecuteSpec(id, this.config.execAsyncTimeoutSeconds, recorded);
    // One request id per execution (a fleet run starts many from one HTTP request), so each
    // intent pairs with its own outcome in the command history.
    const ticket = await this.runner.begin(spec, caller, vmId, input, {
      requestId: id,
      params: { execution_id: id, async: true, run_id: runId },
      freshLocation: true,
    });
    const request = recorded.request!;
    request.limits = runAsLimitsOf(ticket.grant);
    let row: ExecutionRow;
    try {
      row = await this.repo.insert({
        id,
        vmId,
        nodeId: ticket.where.nodeId,
        projectId: ticket.where.projectId,
        runId,
        actor: caller.principal.username,
        request: { ...ticket.prepared.params, execution_id: id, async: true, run_id: runId },
        timeoutMs: request.timeoutMs,
        owner: this.driver.replicaId,
        leaseMs: this.config.leaseMs,
        intent: storedIntentOf(ticket),
      });
    } catch (err) {
      const e = new VmGuestException(
        VmGuestErrorCode.STORE_UNAVAILABLE,
        `the execution could not be recorded: ${(err as Error).message}`,
      );
      if (isDuplicateKey(err)) {
        // Recorded too late: a replica's sweep took this intent for one whose replica had
        // stopped, and wrote its outcome (ExecutionDriver.closeUnrecorded). Nothing was sent.
        throw e;
      }
      throw await ticket.failed(e, 0);
    }
    // Nothing after this may fail: a caller that sees a failure may start it again (a fleet
    // run retries a start that failed for want of the store), which must never run it twice.
    this.driver.drive(id, ticket, request, runId);
    return executionView(row);
  }

  /**
   * The executions the caller may read (guest.exec or audit.read on their project), newest
   * first, a page at a time. A caller that holds neither anywhere, or names a project it holds
   * neither on, is refused (403, audited).
   */
  async list(caller: Caller, q: ExecutionListQuery): Promise<ExecutionListView> {
    const scope = readableProjects(caller);
    const outside =
      scope !== 'all' &&
      (scope.length === 0 || (q.project !== undefined && !scope.includes(q.project)));
    if (outside) {
      const where = q.project === undefined ? 'any project' : `project ${q.project}`;
      const why = `listing executions needs guest.exec or audit.read on ${where}`;
      await this.access.denyUnscoped(caller, 'guest.exec', 'execution.list', why, q.project);
      throw AuthException.denied('guest.exec', `(or audit.read) on ${where}`);
    }
    const window = historyWindow(q, this.config.historyPageMax);
    let rows: Awaited<ReturnType<ExecutionsRepository['list']>>;
    try {
      rows = await this.repo.list({
        projects: scope,
        vmId: q.vm_id,
        projectId: q.project,
        states: statesOf<ExecutionState>(q.state, EXECUTION_STATES),
        actor: q.actor,
        runId: q.run_id,
        ...window,
      });
    } catch (err) {
      throw new VmGuestException(
        VmGuestErrorCode.STORE_UNAVAILABLE,
        `executions cannot be read: ${(err as Error).message}`,
      );
    }
    return { executions: rows.map(executionView), next_cursor: nextCursor(rows, window.limit) };
  }

  async get(id: string, caller: Caller): Promise<ExecutionView> {
    return executionView(await this.readable(id, caller));
  }

  /** Stored output after `afterSeq` (a page): its actor or audit.read_output (403, audited). */
  async output(id: string, caller: Caller, afterSeq: number): Promise<OutputChunk[]> {
    await this.outputReadable(id, caller);
    return this.repo.output(id, afterSeq, OUTPUT_PAGE);
  }

  /** Sends the stored output after `afterSeq`, then live chunks, then the end (as output()). */
  async follow(
    id: string,
    caller: Caller,
    afterSeq: number,
    sink: FollowSink,
  ): Promise<() => void> {
    return this.follower.follow(await this.outputReadable(id, caller), afterSeq, sink);
  }

  /** Whether the caller may read the execution's output (its status readable or not). */
  async mayReadOutput(id: string, caller: Caller): Promise<boolean> {
    return this.outputGranted(await this.readable(id, caller), caller);
  }

  /**
   * Output is evidence that may hold secrets the redaction patterns missed: its own actor
   * (still holding guest.exec there) reads it, anyone else needs audit.read_output on its
   * project, not merely guest.exec or audit.read.
   */
  private outputGranted(row: ExecutionRow, caller: Caller): boolean {
    const p = caller.principal;
    return (
      (row.actor === p.username && guestGrant(p, 'guest.exec', row.project_id).granted) ||
      guestGrant(p, 'audit.read_output', row.project_id).granted
    );
  }

  private async outputReadable(id: string, caller: Caller): Promise<ExecutionRow> {
    const row = await this.readable(id, caller);
    if (!this.outputGranted(row, caller)) {
      await this.access.require(
        caller,
        'audit.read_output',
        { vmId: row.vm_id, projectId: row.project_id, nodeId: row.node_id },
        'execution.output',
      );
    }
    return row;
  }

  /**
   * Asks the agent to stop the execution's process group; the execution ends `cancelled`. Its
   * own actor may cancel it while holding guest.exec on its project (whatever run-as limits);
   * anyone else needs guest.exec there without limits, or to be a global admin.
   *
   * A cancel always ends the execution: when the agent's answer to the execution does not come
   * within LQ_EXEC_CANCEL_SETTLE_MS (its daemon died, the reply was lost, the agent is gone or
   * does not know it), the execution is ended here, `cancelled` with the reason, and its outcome
   * row written. Only a refused cancel (403, bad id, the audit trail down) changes nothing.
   */
  async cancel(id: string, caller: Caller): Promise<ExecutionView> {
    const row = await this.known(id);
    await this.mayCancel(row, caller);
    if (FINAL_STATES.has(row.status)) {
      return executionView(row);
    }
    let agent: string;
    try {
      const r = await this.runner.run(EXECUTE_CANCEL, caller, row.vm_id, {
        executionId: id,
        retryMs: this.config.execCancelRetryMs,
      });
      agent = r.found
        ? 'the agent stopped its process group'
        : 'the agent does not know it (restarted, or the execution never reached it)';
    } catch (err) {
      if (!deliveryFailure(err)) {
        throw err;
      }
      agent = `the cancel did not reach the agent (${(err as Error).message})`;
    }
    const ended = await this.settled(id, this.config.output.cancelSettleMs);
    if (ended) {
      return executionView(ended);
    }
    await this.endWithoutAnswer(
      row,
      caller,
      `cancelled by ${caller.principal.username}; ${agent}; the agent's answer to the execution never came, so it may still be running in the guest`,
    );
    return executionView((await this.repo.get(id))!);
  }

  /** The execution once it has ended, polling up to `ms`; undefined if it is still running. */
  private async settled(id: string, ms: number): Promise<ExecutionRow | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const current = await this.repo.get(id);
      if (current && FINAL_STATES.has(current.status)) {
        return current;
      }
      if (Date.now() >= deadline) {
        return undefined;
      }
      await sleep(Math.min(200, Math.max(10, deadline - Date.now())));
    }
  }

  /**
   * Ends an execution whose agent's answer did not come: through this replica's driver when it
   * runs it (its ticket writes the outcome), else here, once (the first end recorded wins and
   * writes the outcome row; the driving replica, if alive, stops waiting when it sees the end).
   */
  private async endWithoutAnswer(row: ExecutionRow, caller: Caller, why: string): Promise<void> {
    const end = { status: 'cancelled' as const, error: why };
    if (await this.driver.stopNow(row.id, end, why)) {
      return;
    }
    if (await this.repo.finish(row.id, end)) {
      await this.runner.outcome(
        {
          actor: row.actor,
          authMethod: '',
          sourceIp: caller.sourceIp,
          requestId: row.id,
          vmId: row.vm_id,
          nodeId: row.node_id,
          projectId: row.project_id,
          operation: 'execute',
        },
        {
          status: 'cancelled',
          error: why,
          params: { cancelled_by: caller.principal.username, answer_lost: true },
        },
      );
    }
  }

  private async mayCancel(row: ExecutionRow, caller: Caller): Promise<void> {
    const p = caller.principal;
    const exec = guestGrant(p, 'guest.exec', row.project_id);
    const own = row.actor === p.username && exec.granted;
    if (own || (exec.granted && exec.grant.runAs === undefined) || isGlobalAdmin(p)) {
      return;
    }
    const vm = { vmId: row.vm_id, projectId: row.project_id, nodeId: row.node_id };
    const why = `execution ${row.id} was started by ${row.actor}; cancelling another caller's execution needs guest.exec on project ${row.project_id} without run-as limits`;
    await this.access.deny(caller, 'guest.exec', vm, 'execute.cancel', why);
    throw AuthException.denied('guest.exec', `(${why})`);
  }

  /** The execution, if the caller may read it (guest.exec or audit.read on its project). */
  private async readable(id: string, caller: Caller): Promise<ExecutionRow> {
    const row = await this.known(id);
    const p = caller.principal;
    if (
      !guestGrant(p, 'guest.exec', row.project_id).granted &&
      !guestGrant(p, 'audit.read', row.project_id).granted
    ) {
      await this.access.require(
        caller,
        'guest.exec',
        { vmId: row.vm_id, projectId: row.project_id, nodeId: row.node_id },
        'execution.read',
      );
    }
    return row;
  }

  private async known(id: string): Promise<ExecutionRow> {
    if (!UUID.test(id)) {
      throw new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, 'execution id must be a UUID');
    }
    let row: ExecutionRow | undefined;
    try {
      row = await this.repo.get(id);
    } catch (err) {
      throw new VmGuestException(
        VmGuestErrorCode.STORE_UNAVAILABLE,
        `executions cannot be read: ${(err as Error).message}`,
      );
    }
    if (!row) {
      throw new VmGuestException(VmGuestErrorCode.NOT_FOUND, `no execution ${id}`);
    }
    return row;
  }
}
