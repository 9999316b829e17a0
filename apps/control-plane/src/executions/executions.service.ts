import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { fromBinary } from '@bufbuild/protobuf';
import type { Subscription } from '@nats-io/transport-node';
import {
  ExecOutputEventSchema,
  OutputStream,
  callGuest,
  isSubjectToken,
  subjects,
  type ExecuteResponse,
} from '@lq/proto';
import { AuditService, redactExecute, type AuditActor } from '@lq/audit';
import { AuthException, grantsOn, guestGrant, isGlobalAdmin } from '@lq/auth';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { InventoryService } from '../inventory/inventory.service.js';
import { NatsService } from '../nats/nats.service.js';
import { VmAccessService, runAsLimitsOf, type Caller } from '../access/vm-access.service.js';
import { actorOf } from '../audit/audit-actor.js';
import {
  EXEC_REPLY_MARGIN_MS,
  VmGuestService,
  executeOutcome,
  type ExecuteInput,
} from '../guest-ops/vm-guest.service.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import {
  ExecutionsRepository,
  FINAL_STATES,
  type ExecutionEnd,
  type ExecutionRow,
  type ExecutionState,
  type OutputChunk,
} from './executions.repository.js';

/** An execution as the API shows it. */
export interface ExecutionView {
  id: string;
  vm_id: string;
  node_id: string;
  project_id: string;
  run_id: string | null;
  actor: string;
  status: ExecutionState;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  command: string | null;
  argv: string[] | null;
  run_as_user: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
  stdout_total_bytes: number | null;
  stderr_total_bytes: number | null;
}

export function executionView(r: ExecutionRow): ExecutionView {
  const req = r.request;
  const num = (v: string | null) => (v === null ? null : Number(v));
  return {
    id: r.id,
    vm_id: r.vm_id,
    node_id: r.node_id,
    project_id: r.project_id,
    run_id: r.run_id,
    actor: r.actor,
    status: r.status,
    exit_code: r.exit_code,
    signal: r.signal,
    error: r.error,
    command: typeof req.command === 'string' ? req.command : null,
    argv: Array.isArray(req.argv) ? (req.argv as string[]) : null,
    run_as_user: typeof req.run_as_user === 'string' ? req.run_as_user : null,
    created_at: r.created_at.toISOString(),
    started_at: r.started_at?.toISOString() ?? null,
    ended_at: r.ended_at?.toISOString() ?? null,
    duration_ms: r.ended_at && r.started_at ? r.ended_at.getTime() - r.started_at.getTime() : null,
    stdout_total_bytes: num(r.stdout_total_bytes),
    stderr_total_bytes: num(r.stderr_total_bytes),
  };
}

/** Where a follower's chunks and the end go (SSE, gRPC stream). */
export interface FollowSink {
  chunk(c: OutputChunk): void;
  end(view: ExecutionView): void;
}

const OUTPUT_FLUSH_MS = 200;
const FOLLOW_POLL_MS = 400;
const PAGE = 500;

/** The state an agent's answer puts an execution in. */
export function stateOf(r: ExecuteResponse): ExecutionState {
  if (r.cancelled) {
    return 'cancelled';
  }
  if (r.timedOut) {
    return 'timed_out';
  }
  return r.exitCode === 0 ? 'succeeded' : 'failed';
}

/**
 * Asynchronous executions: started at once (202), run by the VM's agent with its output
 * streamed (ExecOutputEvents relayed by the VM's node daemon on
 * lq.v1.node.<nodeId>.exec.<id>.output), stored chunk by chunk, followed live and resumably,
 * cancellable. Every one is audited like a synchronous
 * execute: the intent before the request leaves, the outcome when it ends. An agent that goes
 * away mid-run gets a grace period to come back (same agent: the request is re-sent with its id
 * and attaches to the running command); otherwise the execution ends `agent_lost`.
 */
@Injectable()
export class ExecutionsService implements OnApplicationShutdown {
  private readonly log = new Logger('executions');
  /** Executions this replica drives (their output subscriptions and buffers). */
  private readonly driving = new Map<
    string,
    { sub: Subscription; buffer: OutputChunk[]; runId?: string }
  >();
  private flushTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** 'ended' (executionId, state, runId?) for each execution this replica drove to its end. */
  readonly events = new EventEmitter();

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(VmAccessService) private readonly access: VmAccessService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(VmGuestService) private readonly guest: VmGuestService,
    @Inject(ExecutionsRepository) private readonly repo: ExecutionsRepository,
  ) {}

  /** Starts the background work: output flushes and the sweep of executions left behind. */
  startBackground(): void {
    this.flushTimer = setInterval(() => void this.flushAll(), OUTPUT_FLUSH_MS);
    this.flushTimer.unref();
    this.sweepTimer = setInterval(() => void this.sweep(), 30_000);
    this.sweepTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.flushTimer);
    clearInterval(this.sweepTimer);
    await this.flushAll();
  }

  /**
   * Validates, authorizes (guest.exec and the binding's limits on the VM's project), writes the
   * audit intent, records the execution and sends it; resolves once it is under way.
   */
  async start(
    vmId: string,
    input: ExecuteInput,
    caller: Caller,
    runId?: string,
  ): Promise<ExecutionView> {
    if (!isSubjectToken(vmId)) {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        'vm id must be 1-128 letters, digits, _ or -',
      );
    }
    // Asynchronous executions are for long work: their default timeout is the long one.
    const request = this.guest.executeRequest({
      ...input,
      timeoutSeconds: input.timeoutSeconds ?? this.config.execAsyncTimeoutSeconds,
    });
    let where = await this.inventory.locate(vmId);
    if (where.agentState !== 'ready') {
      // A location cached while the agent was away would refuse it for a while after it is
      // back: read the inventory itself before refusing.
      this.inventory.forget(vmId);
      where = await this.inventory.locate(vmId);
    }
    const grant = await this.access.requireExec(
      caller,
      { vmId, projectId: where.projectId, nodeId: where.nodeId },
      request.runAsUser,
    );
    request.limits = runAsLimitsOf(grant);
    if (where.agentState !== 'ready') {
      throw new VmGuestException(
        VmGuestErrorCode.AGENT_NOT_CONNECTED,
        `the guest agent of VM ${vmId} is ${where.agentState}`,
      );
    }
    const id = randomUUID();
    request.executionId = id;
    request.streamOutput = true;
    const params = {
      ...redactExecute({ ...input, argv: request.argv }),
      execution_id: id,
      async: true,
      run_id: runId,
    };
    // One request id per execution (a fleet run starts many from one HTTP request), so each
    // intent pairs with its own outcome in the command history.
    const actor: AuditActor = { ...actorOf(caller.principal, caller), requestId: id };
    const row = {
      ...actor,
      vmId,
      nodeId: where.nodeId,
      projectId: where.projectId,
      operation: 'execute',
    };
    await this.audit.intent({ ...row, params });
    try {
      await this.repo.insert({
        id,
        vmId,
        nodeId: where.nodeId,
        projectId: where.projectId,
        runId,
        actor: caller.principal.username,
        request: params,
        timeoutMs: request.timeoutMs,
      });
    } catch (err) {
      await this.audit.record({
        ...row,
        kind: 'outcome',
        status: VmGuestErrorCode.STORE_UNAVAILABLE,
        error: (err as Error).message,
      });
      throw new VmGuestException(
        VmGuestErrorCode.STORE_UNAVAILABLE,
        `the execution could not be recorded: ${(err as Error).message}`,
      );
    }
    // Only the node that runs it may publish there (NATS permissions, deploy/nats).
    const sub = this.nats.connection.subscribe(subjects.execOutput(where.nodeId, id), {
      callback: (err, msg) => {
        if (err) {
          return;
        }
        try {
          const e = fromBinary(ExecOutputEventSchema, msg.data);
          this.driving.get(id)?.buffer.push({
            seq: Number(e.seq),
            stream: e.stream === OutputStream.STDERR ? 'stderr' : 'stdout',
            data: Buffer.from(e.data),
            droppedBytes: Number(e.droppedBytes),
          });
        } catch (e) {
          this.log.warn(`dropped output of ${id}: ${(e as Error).message}`);
        }
      },
    });
    this.driving.set(id, { sub, buffer: [], runId });
    void this.drive(id, vmId, where.nodeId, request, row, caller.principal.username);
    const created = await this.repo.get(id);
    return executionView(created!);
  }

  async get(id: string, caller: Caller): Promise<ExecutionView> {
    return executionView(await this.readable(id, caller));
  }

  /** Stored output after `afterSeq` (a page). */
  async output(id: string, caller: Caller, afterSeq: number): Promise<OutputChunk[]> {
    await this.readable(id, caller);
    return this.repo.output(id, afterSeq, PAGE);
  }

  /**
   * Asks the agent to stop the execution's process group; the execution ends `cancelled`. Its
   * own actor may cancel it while holding guest.exec on its project (whatever run-as limits);
   * anyone else needs guest.exec there without limits, or to be a global admin.
   */
  async cancel(id: string, caller: Caller): Promise<ExecutionView> {
    const row = await this.known(id);
    await this.mayCancel(row, caller);
    if (FINAL_STATES.has(row.status)) {
      return executionView(row);
    }
    await this.guest.cancelExecution(row.vm_id, id, caller);
    return executionView((await this.repo.get(id))!);
  }

  /**
   * Sends the stored output after `afterSeq`, then live chunks as they come, then the end.
   * Returns a function that stops following.
   */
  async follow(
    id: string,
    caller: Caller,
    afterSeq: number,
    sink: FollowSink,
  ): Promise<() => void> {
    const { node_id: nodeId } = await this.readable(id, caller);
    let last = afterSeq;
    let stopped = false;
    // Live chunks ahead of a gap (this follower subscribed after the chunk before them went
    // by) wait here until the stored output fills the gap: chunks go out in order, none lost.
    const held = new Map<number, OutputChunk>();
    const send = (c: OutputChunk) => {
      last = c.seq;
      sink.chunk(c);
      for (let next = held.get(last + 1); next; next = held.get(last + 1)) {
        held.delete(next.seq);
        last = next.seq;
        sink.chunk(next);
      }
    };
    /** A stored chunk: the store is complete up to it, so it goes out whatever came before. */
    const stored = (c: OutputChunk) => {
      if (c.seq > last) {
        send(c);
      }
    };
    const live = (c: OutputChunk) => {
      if (c.seq === last + 1) {
        send(c);
      } else if (c.seq > last) {
        held.set(c.seq, c);
      }
    };
    const sub = this.nats.connection.subscribe(subjects.execOutput(nodeId, id), {
      callback: (err, msg) => {
        if (err || stopped) {
          return;
        }
        try {
          const e = fromBinary(ExecOutputEventSchema, msg.data);
          live({
            seq: Number(e.seq),
            stream: e.stream === OutputStream.STDERR ? 'stderr' : 'stdout',
            data: Buffer.from(e.data),
            droppedBytes: Number(e.droppedBytes),
          });
        } catch {
          // not an ExecOutputEvent
        }
      },
    });
    const replay = async () => {
      for (;;) {
        const page = await this.repo.output(id, last, PAGE);
        page.forEach(stored);
        if (page.length < PAGE) {
          return;
        }
      }
    };
    const stop = () => {
      stopped = true;
      clearInterval(timer);
      if (!sub.isClosed()) {
        sub.unsubscribe();
      }
    };
    let checking = false;
    const check = async () => {
      if (checking || stopped) {
        return;
      }
      checking = true;
      try {
        const row = await this.repo.get(id);
        if (held.size > 0) {
          await replay();
        }
        if (row && FINAL_STATES.has(row.status)) {
          // The driver stores the last chunks before it records the end.
          await replay();
          if (!stopped) {
            stop();
            sink.end(executionView(row));
          }
        }
      } catch (err) {
        this.log.warn(`following ${id}: ${(err as Error).message}`);
      } finally {
        checking = false;
      }
    };
    const timer = setInterval(() => void check(), FOLLOW_POLL_MS);
    await replay();
    await check();
    return stop;
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
      grantsOn(p, 'guest.exec', row.project_id).length === 0 &&
      grantsOn(p, 'audit.read', row.project_id).length === 0
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
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
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

  /** Runs the request to its end (or the agent's loss) and records the outcome. */
  private async drive(
    id: string,
    vmId: string,
    nodeId: string,
    request: ReturnType<VmGuestService['executeRequest']>,
    row: AuditActor & { vmId: string; nodeId: string; projectId: string; operation: string },
    actor: string,
  ): Promise<void> {
    const started = Date.now();
    const send = () =>
      callGuest(
        this.nats.connection,
        nodeId,
        'execute',
        {
          requestId: id,
          vmId,
          timeoutMs: request.timeoutMs + EXEC_REPLY_MARGIN_MS,
          actor,
          operation: { case: 'execute', value: request },
        },
        'execute',
        this.config.natsSlackMs,
      );
    let end: ExecutionEnd;
    let response: ExecuteResponse | undefined;
    try {
      response = await send();
    } catch (err) {
      const e = this.guest.toException(err, vmId, nodeId);
      if (e.code === VmGuestErrorCode.AGENT_NOT_CONNECTED) {
        response = await this.recover(id, vmId, nodeId, started, send);
      }
      if (!response) {
        end =
          e.code === VmGuestErrorCode.AGENT_NOT_CONNECTED
            ? { status: 'agent_lost', error: `the agent went away mid-run: ${e.message}` }
            : { status: 'failed', error: `${e.code}: ${e.message}` };
        await this.finish(id, end, {
          ...row,
          kind: 'outcome',
          status: end.status,
          error: end.error,
          durationMs: Date.now() - started,
        });
        return;
      }
    }
    const r = response;
    end = {
      status: stateOf(r),
      exitCode: r.exitCode,
      signal: r.signal || undefined,
      stdoutTotalBytes: Number(r.stdoutTotalBytes),
      stderrTotalBytes: Number(r.stderrTotalBytes),
    };
    await this.finish(id, end, {
      ...row,
      kind: 'outcome',
      ...executeOutcome(r, this.config.audit.outputMaxBytes),
      durationMs: r.durationMs,
    });
  }

  /**
   * The agent's connection broke mid-run. Within the grace period, once it answers again:
   * the same agent (its uptime covers the execution) gets the request again with the same id
   * and attaches to the running command or returns its retained result; a restarted one means
   * the execution is lost (re-sending would run it twice).
   */
  private async recover(
    id: string,
    vmId: string,
    nodeId: string,
    started: number,
    send: () => Promise<ExecuteResponse>,
  ): Promise<ExecuteResponse | undefined> {
    const deadline = Date.now() + this.config.execLostGraceMs;
    while (Date.now() < deadline) {
      await sleep(Math.min(500, Math.max(50, deadline - Date.now())));
      let uptimeMs: number;
      try {
        const pong = await callGuest(
          this.nats.connection,
          nodeId,
          'ping',
          { vmId, timeoutMs: 1000, operation: { case: 'ping', value: {} } },
          'pong',
          500,
        );
        uptimeMs = pong.uptimeSeconds * 1000;
      } catch {
        continue;
      }
      if (uptimeMs < Date.now() - started) {
        this.log.warn(`execution ${id}: the agent of ${vmId} restarted during it`);
        return undefined;
      }
      try {
        return await send();
      } catch (err) {
        const e = this.guest.toException(err, vmId, nodeId);
        if (e.code !== VmGuestErrorCode.AGENT_NOT_CONNECTED) {
          return undefined;
        }
      }
    }
    return undefined;
  }

  /** Stores the last output, then the end (once), then the outcome row. */
  private async finish(
    id: string,
    end: ExecutionEnd,
    outcome: Parameters<AuditService['record']>[0],
  ): Promise<void> {
    // Output published just before the reply may still be on its way.
    await sleep(50);
    const d = this.driving.get(id);
    for (let attempt = 0; ; attempt++) {
      try {
        if (d) {
          await this.flush(id);
        }
        await this.repo.finish(id, end);
        break;
      } catch (err) {
        if (attempt >= 30) {
          this.log.error(`execution ${id}: end not recorded: ${(err as Error).message}`);
          break;
        }
        await sleep(1000);
      }
    }
    if (d && !d.sub.isClosed()) {
      d.sub.unsubscribe();
    }
    this.driving.delete(id);
    await this.audit.record(outcome);
    this.events.emit('ended', id, end.status, d?.runId);
  }

  private async flush(id: string): Promise<void> {
    const d = this.driving.get(id);
    if (!d || d.buffer.length === 0) {
      return;
    }
    const chunks = d.buffer.splice(0);
    try {
      await this.repo.appendOutput(id, chunks);
    } catch (err) {
      d.buffer.unshift(...chunks);
      throw err;
    }
  }

  private async flushAll(): Promise<void> {
    for (const id of this.driving.keys()) {
      await this.flush(id).catch((err: Error) =>
        this.log.warn(`output of ${id} not stored yet: ${err.message}`),
      );
    }
  }

  /** Executions whose replica stopped before their end: failed, never running forever. */
  private async sweep(): Promise<void> {
    try {
      for (const row of await this.repo.overdue(60_000)) {
        if (this.driving.has(row.id)) {
          continue;
        }
        if (
          await this.repo.finish(row.id, {
            status: 'failed',
            error: 'no result: the control plane running it stopped before its end',
          })
        ) {
          this.log.warn(`execution ${row.id} had no result long past its timeout`);
        }
      }
    } catch {
      // the database is away; next time
    }
  }
}
