import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { fromBinary } from '@bufbuild/protobuf';
import type { Subscription } from '@nats-io/transport-node';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import {
  ExecOutputEventSchema,
  NodeHeartbeatSchema,
  OutputStream,
  subjects,
  type ExecuteRequest,
  type ExecuteResponse,
} from '@lq/proto';
import { AuditService, OutputRedactor } from '@lq/audit';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { guestFailure, isGuestError } from '../guest-ops/guest-errors.js';
import type { Ticket } from '../guest-ops/guest-operation.runner.js';
import { EXEC_REPLY_MARGIN_MS } from '../guest-ops/operations/index.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { NatsService } from '../nats/nats.service.js';
import {
  ExecutionsRepository,
  type ExecutionEnd,
  type ExecutionState,
  type OutputChunk,
} from './executions.repository.js';

const OUTPUT_FLUSH_MS = 200;

/** The state an agent's answer puts an execution in. */
export function stateOf(r: ExecuteResponse): ExecutionState {
  if (r.cancelled) {
    return 'cancelled';
  }
  if (r.timedOut) {
    return 'timed_out';
  }
  // A non-zero exit, or death by a signal, is `failed` everywhere (API, audit trail, lqctl).
  return r.exitCode === 0 && !r.signal ? 'succeeded' : 'failed';
}

/**
 * A chunk with the redaction patterns applied: what is stored and what every follower gets.
 * Each chunk is redacted on its own, so a secret split between two chunks can escape a pattern.
 */
export function redactChunk(redactor: OutputRedactor, c: OutputChunk): OutputChunk {
  const r = redactor.redact(c.data);
  return r.count === 0 ? c : { ...c, data: Buffer.from(r.data), redactions: r.count };
}

/** An ExecOutputEvent as a stored chunk. */
export function chunkOf(data: Uint8Array): OutputChunk {
  const e = fromBinary(ExecOutputEventSchema, data);
  return {
    seq: Number(e.seq),
    stream: e.stream === OutputStream.STDERR ? 'stderr' : 'stdout',
    data: Buffer.from(e.data),
    droppedBytes: Number(e.droppedBytes),
  };
}

interface Driving {
  sub: Subscription | undefined;
  buffer: OutputChunk[];
  runId?: string;
  nodeId: string;
  /** Ends the wait for the reply: the node daemon that had the request restarted. */
  interrupt?: () => void;
}

/** The node daemon holding an execution's request restarted: its reply will never come. */
class DaemonRestarted extends Error {}

/**
 * Runs the asynchronous executions this replica started to their end: subscribes to their
 * output on their node's subject (only that node may publish there), stores it chunk by chunk,
 * sends the request through the audited ticket, gives an agent that went away a grace period
 * to come back, and records the end and the outcome row. An execution whose replica stopped is
 * ended by the sweep, never left running forever.
 *
 * Events: 'ended' (executionId, state, runId?) for each execution driven to its end here.
 */
@Injectable()
export class ExecutionDriver implements OnApplicationShutdown {
  private readonly log = new Logger('executions');
  private readonly driving = new Map<string, Driving>();
  private flushTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private heartbeats: Subscription | undefined;
  /** When each node's daemon started, as its last heartbeat said. */
  private readonly daemonStarts = new Map<string, number>();
  readonly events = new EventEmitter();

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(ExecutionsRepository) private readonly repo: ExecutionsRepository,
    @Inject(OutputRedactor) private readonly redactor: OutputRedactor,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /**
   * Starts the background work: output flushes, the sweep of executions left behind, and the
   * watch on node daemons' heartbeats (every replica sees them all, not as a queue group).
   */
  startBackground(): void {
    this.watchDaemons();
    this.flushTimer = setInterval(() => void this.flushAll(), OUTPUT_FLUSH_MS);
    this.flushTimer.unref();
    this.sweepTimer = setInterval(() => void this.sweep(), 30_000);
    this.sweepTimer.unref();
  }

  /**
   * A node daemon's heartbeat names when it started; a new start while executions wait for its
   * replies means it restarted and lost them: those executions stop waiting (not for their full
   * timeout) and are recovered, reattached to the agent's running command or retained result,
   * or ended agent_lost when the agent is gone.
   */
  private watchDaemons(): void {
    this.heartbeats = this.nats.connection.subscribe(subjects.allHeartbeats, {
      callback: (err, msg) => {
        if (err) {
          return;
        }
        try {
          // Only node X may publish on X's subject (NATS permissions): the subject names it.
          const nodeId = msg.subject.split('.')[3]!;
          const hb = fromBinary(NodeHeartbeatSchema, msg.data);
          if (hb.nodeId !== nodeId || !hb.startedAt) {
            return;
          }
          const started = timestampMs(hb.startedAt);
          const before = this.daemonStarts.get(nodeId);
          this.daemonStarts.set(nodeId, started);
          if (before === undefined || before === started) {
            return;
          }
          for (const [id, d] of this.driving) {
            if (d.nodeId === nodeId && d.interrupt) {
              this.log.warn(`execution ${id}: node daemon ${nodeId} restarted; recovering it`);
              d.interrupt();
            }
          }
        } catch {
          // not a heartbeat; the inventory logs those
        }
      },
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.heartbeats?.unsubscribe();
    clearInterval(this.flushTimer);
    clearInterval(this.sweepTimer);
    await this.flushAll();
  }

  /** Takes over an execution whose intent and row are written; returns at once. */
  drive(id: string, ticket: Ticket<ExecuteResponse>, request: ExecuteRequest, runId?: string) {
    let sub: Subscription;
    try {
      sub = this.subscribeOutput(id, ticket);
    } catch (err) {
      // NATS is closed: nothing was sent; the execution ends failed, with its outcome.
      const e = guestFailure(err, ticket.row.vmId, ticket.where.nodeId);
      this.driving.set(id, { sub: undefined, buffer: [], runId, nodeId: ticket.where.nodeId });
      void this.finish(id, { status: 'failed', error: `${e.code}: ${e.message}` }, () =>
        ticket.failed(e, 0),
      );
      return;
    }
    this.driving.set(id, { sub, buffer: [], runId, nodeId: ticket.where.nodeId });
    void this.run(id, ticket, request);
  }

  private subscribeOutput(id: string, ticket: Ticket<ExecuteResponse>): Subscription {
    return this.nats.connection.subscribe(subjects.execOutput(ticket.where.nodeId, id), {
      callback: (err, msg) => {
        if (err) {
          return;
        }
        try {
          // Redacted before it is stored: the store never holds what the patterns match.
          this.driving.get(id)?.buffer.push(redactChunk(this.redactor, chunkOf(msg.data)));
        } catch (e) {
          this.log.warn(`dropped output of ${id}: ${(e as Error).message}`);
        }
      },
    });
  }

  /** Runs the request to its end (or the agent's loss) and records the outcome. */
  private async run(
    id: string,
    ticket: Ticket<ExecuteResponse>,
    request: ExecuteRequest,
  ): Promise<void> {
    const started = Date.now();
    // Each send waits for its reply, or for its node daemon's restart (which loses it).
    const send = () => {
      const reply = ticket.dispatcher.send(
        'execute',
        { case: 'execute', value: request },
        request.timeoutMs + EXEC_REPLY_MARGIN_MS,
        id,
      );
      const d = this.driving.get(id);
      if (!d) {
        return reply;
      }
      reply.catch(() => undefined);
      return Promise.race([
        reply,
        new Promise<never>((_, reject) => {
          d.interrupt = () => reject(new DaemonRestarted());
        }),
      ]).finally(() => {
        d.interrupt = undefined;
      });
    };
    let response: ExecuteResponse | undefined;
    try {
      response = await send();
    } catch (err) {
      const e =
        err instanceof DaemonRestarted
          ? new VmGuestException(
              VmGuestErrorCode.AGENT_NOT_CONNECTED,
              `node daemon ${ticket.where.nodeId} restarted during the execution`,
            )
          : guestFailure(err, ticket.row.vmId, ticket.where.nodeId);
      if (isGuestError(e, VmGuestErrorCode.AGENT_NOT_CONNECTED)) {
        response = await this.recover(id, ticket, started, send);
      }
      if (!response) {
        const lost = isGuestError(e, VmGuestErrorCode.AGENT_NOT_CONNECTED);
        const failure = lost
          ? new VmGuestException(
              VmGuestErrorCode.AGENT_NOT_CONNECTED,
              `the agent went away mid-run: ${e.message}`,
            )
          : e;
        // CODE:AGENT_CODE as the audit trail writes it: the view tells a refusal from it.
        const agentCode = e instanceof VmGuestException && e.agentCode ? `:${e.agentCode}` : '';
        const end: ExecutionEnd = lost
          ? { status: 'agent_lost', error: failure.message }
          : { status: 'failed', error: `${e.code}${agentCode}: ${e.message}` };
        await this.finish(id, end, () => ticket.failed(failure, Date.now() - started, end.status));
        return;
      }
    }
    const r = response;
    await this.finish(
      id,
      {
        status: stateOf(r),
        exitCode: r.exitCode,
        signal: r.signal || undefined,
        stdoutTotalBytes: Number(r.stdoutTotalBytes),
        stderrTotalBytes: Number(r.stderrTotalBytes),
      },
      () => ticket.succeeded(r, r.durationMs),
    );
  }

  /**
   * The agent's connection broke mid-run. Within the grace period, once it answers again:
   * the same agent (its uptime covers the execution) gets the request again with the same id
   * and attaches to the running command or returns its retained result; a restarted one means
   * the execution is lost (re-sending would run it twice).
   */
  private async recover(
    id: string,
    ticket: Ticket<ExecuteResponse>,
    started: number,
    send: () => Promise<ExecuteResponse>,
  ): Promise<ExecuteResponse | undefined> {
    const deadline = Date.now() + this.config.execLostGraceMs;
    while (Date.now() < deadline) {
      await sleep(Math.min(500, Math.max(50, deadline - Date.now())));
      let uptimeMs: number;
      try {
        const pong = await ticket.dispatcher.send('ping', { case: 'ping', value: {} }, 1000, '');
        uptimeMs = pong.uptimeSeconds * 1000;
      } catch {
        continue;
      }
      if (uptimeMs < Date.now() - started) {
        this.log.warn(`execution ${id}: the agent of ${ticket.row.vmId} restarted during it`);
        return undefined;
      }
      try {
        return await send();
      } catch (err) {
        if (err instanceof DaemonRestarted) {
          continue;
        }
        const e = guestFailure(err, ticket.row.vmId, ticket.where.nodeId);
        if (!isGuestError(e, VmGuestErrorCode.AGENT_NOT_CONNECTED)) {
          return undefined;
        }
      }
    }
    return undefined;
  }

  /** Stores the last output, then the end (once), then the outcome row. */
  private async finish(id: string, end: ExecutionEnd, outcome: () => Promise<unknown>) {
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
    if (d?.sub && !d.sub.isClosed()) {
      d.sub.unsubscribe();
    }
    this.driving.delete(id);
    await outcome();
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

  /**
   * Executions whose replica stopped before their end: failed, never running forever, and the
   * audit trail gets the outcome their intent was waiting for.
   */
  private async sweep(): Promise<void> {
    try {
      for (const row of await this.repo.overdue(60_000)) {
        if (this.driving.has(row.id)) {
          continue;
        }
        const error = 'no result: the control plane running it stopped before its end';
        if (await this.repo.finish(row.id, { status: 'failed', error })) {
          this.log.warn(`execution ${row.id} had no result long past its timeout`);
          await this.audit.record({
            kind: 'outcome',
            requestId: row.id,
            actor: row.actor,
            authMethod: '',
            sourceIp: '',
            vmId: row.vm_id,
            nodeId: row.node_id,
            projectId: row.project_id,
            operation: 'execute',
            status: 'failed',
            error,
            params: { execution_id: row.id, swept: true },
          });
        }
      }
    } catch {
      // the database is away; next time
    }
  }
}
