import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { fromBinary } from '@bufbuild/protobuf';
import { create } from '@bufbuild/protobuf';
import {
  ExecOutputEventSchema,
  ExecuteRequestSchema,
  OutputStream,
  type ExecuteRequest,
  type ExecuteResponse,
} from '@lq/proto';
import { AuditService, OutputRedactor, StreamRedactor } from '@lq/audit';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { guestFailure, isGuestError } from '../guest-ops/guest-errors.js';
import {
  GuestOperationRunner,
  type IntentTicket,
  type StoredIntent,
} from '../guest-ops/guest-operation.runner.js';
import { EXEC_REPLY_MARGIN_MS, executeOutcome } from '../guest-ops/operations/index.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { NatsService } from '../nats/nats.service.js';
import { NodeDaemonWatch } from '../nats/node-daemon.watch.js';
import { OutputBudget } from './output-budget.js';
import { ExecOutputFeeds, type FeedSource, type OutputFeed } from './output-feed.js';
import {
  ExecutionsRepository,
  type ExecutionEnd,
  type ExecutionRow,
  type ExecutionState,
  type OutputChunk,
} from './executions.repository.js';
import { walkIntentPages } from '../common/intent-pages.js';

type DrivenTicket = IntentTicket<ExecuteResponse>;

/** Executions one lease tick may adopt (the rest wait for the next tick, or another replica). */
const ADOPT_BATCH = 100;

const OUTPUT_FLUSH_MS = 200;
/** A chunk waiting for room while the database is away tries its flush again after this. */
const ROOM_RETRY_MS = 500;
const SWEEP_MS = 10_000;

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
 * A chunk with the redaction patterns applied by its stream's redactor, which holds back an
 * unfinished line until its end comes (StreamRedactor): what is stored. The chunk may come out
 * shorter, longer (what an earlier one held back) or empty; followers read the stored chunks.
 */
export function redactChunk(streams: ChunkRedactors, c: OutputChunk): OutputChunk {
  const r = streams[c.stream].push(c.data);
  return r.count === 0 && r.data === c.data
    ? c
    : { ...c, data: Buffer.from(r.data), ...(r.count > 0 ? { redactions: r.count } : {}) };
}

/** One StreamRedactor per stream of an execution. */
export type ChunkRedactors = Record<OutputChunk['stream'], StreamRedactor>;

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

/**
 * Whether the driver takes chunk `seq` after chunk `last`: each once and in order. A chunk seen
 * before is dropped; one after a gap that came over NATS core (the chunks between were dropped
 * on the way) is dropped too when `replay` starts reading the stream from its first chunk, which
 * brings the gap and this chunk again in order. A gap over the stream, or with no stream to
 * replay, is output that is gone: the chunk is taken (the end flags what is missing).
 */
export function takesChunk(
  last: number,
  seq: number,
  source: FeedSource,
  replay: () => boolean,
): boolean {
  if (seq <= last) {
    return false;
  }
  return seq === last + 1 || source === 'stream' || !replay();
}

interface Driving {
  sub: OutputFeed | undefined;
  /** The sequence number of the last chunk taken (chunks are numbered from 1). */
  seq: number;
  buffer: OutputChunk[];
  /** The flush under way, if any: the next one waits for it (flush). */
  flushing?: Promise<void>;
  /** Each stream's redaction, across chunks (LQ_OUTPUT_REDACT_*). */
  redactors: ChunkRedactors;
  /** What its stored output may still take (LQ_EXEC_OUTPUT_MAX_BYTES, _BUFFER_BYTES). */
  budget: OutputBudget;
  runId?: string;
  nodeId: string;
  ticket: DrivenTicket;
  started: number;
  /** Set when the execution was ended without its agent's answer (a cancel, another replica). */
  stopped: boolean;
  /** Resolves whenStopped: the wait for the agent's answer gives up at once. */
  stop: () => void;
  whenStopped: Promise<undefined>;
  /** Ends the wait for the reply: the node daemon that had the request restarted. */
  interrupt?: () => void;
}

/** The node daemon holding an execution's request restarted: its reply will never come. */
class DaemonRestarted extends Error {}

/**
 * Runs the asynchronous executions this replica started to their end: subscribes to their
 * output on their node's subject (only that node may publish there), stores it chunk by chunk,
 * sends the request through the audited ticket, gives an agent that went away a grace period
 * to come back, and records the end and the outcome row. It holds a lease on each execution it
 * drives (LQ_LEASE_MS); an execution whose replica died is adopted by another once its lease ran
 * out and finished with the agent's result; one no replica can finish is ended by the sweep,
 * never left running forever.
 *
 * Events: 'ended' (executionId, state, runId?) for each execution driven to its end here.
 */
@Injectable()
export class ExecutionDriver implements OnApplicationShutdown {
  private readonly log = new Logger('executions');
  private readonly driving = new Map<string, Driving>();
  private flushTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  /** This replica as executions' and runs' `owner` (host, process, and a random part). */
  readonly replicaId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** Up to when intents were looked through for an execution never recorded (closeUnrecorded). */
  private unrecordedAfter: string | undefined;
  private closingUnrecorded = false;
  readonly events = new EventEmitter();

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(ExecutionsRepository) private readonly repo: ExecutionsRepository,
    @Inject(OutputRedactor) private readonly redactor: OutputRedactor,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(ExecOutputFeeds) private readonly feeds: ExecOutputFeeds,
    @Inject(GuestOperationRunner) private readonly runner: GuestOperationRunner,
    @Inject(NodeDaemonWatch) private readonly daemons: NodeDaemonWatch,
  ) {}

  /**
   * Starts the background work: output flushes, the sweep of executions left behind, and the
   * recovery of executions whose node daemon restarted or whose NATS connection came back.
   */
  startBackground(): void {
    this.watchDaemons();
    this.watchReconnects();
    this.flushTimer = setInterval(() => void this.flushAll(), OUTPUT_FLUSH_MS);
    this.flushTimer.unref();
    this.sweepTimer = setInterval(() => {
      void this.sweep();
      void this.closeUnrecorded();
      void this.dropEndedElsewhere();
    }, SWEEP_MS);
    this.sweepTimer.unref();
    this.leaseTimer = setInterval(() => void this.leaseTick(), Math.ceil(this.config.leaseMs / 3));
    this.leaseTimer.unref();
  }

  /**
   * Renews the leases of what this replica drives, then adopts executions whose replica died
   * (their lease ran out): each is reattached to its agent under its own audit intent.
   */
  private async leaseTick(): Promise<void> {
    try {
      const ids = [...this.driving.keys()];
      if (ids.length > 0) {
        await this.repo.renew(this.replicaId, ids, this.config.leaseMs);
      }
      for (const row of await this.repo.adoptExpired(
        this.replicaId,
        this.config.leaseMs,
        ADOPT_BATCH,
      )) {
        try {
          this.adopt(row);
        } catch (err) {
          // Its lease runs out again; the sweep ends it if no replica ever can.
          this.log.error(`execution ${row.id}: not adopted: ${(err as Error).message}`);
        }
      }
    } catch (err) {
      // the database is away; next time
      this.log.debug(`lease tick: ${(err as Error).message}`);
    }
  }

  /**
   * Takes over an execution whose replica died, under its stored intent: listens for its output
   * and asks the agent for it again with its id and no command, which attaches to the running
   * command or returns its retained result (the node daemon's, when the agent's was already
   * acknowledged) and never runs anything: an agent that does not know the id refuses a request
   * without a command. The end and the one outcome row are written here, as by its first replica.
   */
  private adopt(row: ExecutionRow): void {
    if (this.driving.has(row.id)) {
      return;
    }
    const stored = row.intent as unknown as StoredIntent;
    const cap = this.config.audit.outputMaxBytes;
    const ticket = this.runner.resume<ExecuteResponse>(stored, (r) => executeOutcome(r, cap));
    const started = (row.started_at ?? row.created_at).getTime();
    this.log.warn(`execution ${row.id}: its replica ${row.owner ?? '?'} stopped; adopted here`);
    let sub: OutputFeed | undefined;
    try {
      // From the stream's first chunk: what was published before this replica listened.
      sub = this.subscribeOutput(row.id, ticket, true);
    } catch {
      // NATS is away: the lease lapses again and another tick (or replica) adopts it
      return;
    }
    this.track(row.id, sub, ticket, row.run_id ?? undefined, started);
    if (!this.feeds.durable) {
      // Over NATS core only what comes from now on arrives: count what is stored as received.
      // The stream replays from the first chunk: those stored already are kept as they are.
      this.driving.get(row.id)!.budget.resumeFrom(Number(row.output_stored_bytes));
    }
    const remaining = Math.max(started + row.timeout_ms - Date.now(), 5000);
    const attach = create(ExecuteRequestSchema, {
      executionId: row.id,
      streamOutput: true,
      timeoutMs: Math.min(remaining, row.timeout_ms),
    });
    void this.run(row.id, ticket, attach, started, true);
  }

  /**
   * A node daemon that restarted lost the replies it owed: executions waiting for one stop
   * waiting (not for their full timeout) and are recovered, reattached to the agent's running
   * command or retained result, or ended agent_lost when the agent is gone. (A daemon whose NATS
   * connection came back needs nothing here: the request is sent again under its id.)
   */
  private watchDaemons(): void {
    this.daemons.onAnyNode((nodeId, change) => {
      if (change !== 'restarted') {
        return;
      }
      for (const [id, d] of this.driving) {
        if (d.nodeId === nodeId && d.interrupt) {
          this.log.warn(`execution ${id}: node daemon ${nodeId} restarted; recovering it`);
          d.interrupt();
        }
      }
    });
  }

  /**
   * This replica's NATS connection came back: a reply published while it was away is lost, so
   * executions waiting for one are recovered as after a daemon restart (reattached to the
   * agent's running command or retained result), not left waiting for their full timeout.
   */
  private watchReconnects(): void {
    const nc = this.nats.connection;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type !== 'reconnect') {
          continue;
        }
        for (const [id, d] of this.driving) {
          if (d.interrupt) {
            this.log.warn(`execution ${id}: NATS reconnected; recovering it`);
            d.interrupt();
          }
        }
      }
    })().catch(() => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.flushTimer);
    clearInterval(this.sweepTimer);
    clearInterval(this.leaseTimer);
    await this.flushAll();
    // What is still running here is adopted by another replica at once, not after the lease.
    await this.repo.release(this.replicaId).catch(() => undefined);
  }

  /** Takes over an execution whose intent and row are written; returns at once. */
  drive(id: string, ticket: DrivenTicket, request: ExecuteRequest, runId?: string) {
    let sub: OutputFeed;
    try {
      sub = this.subscribeOutput(id, ticket);
    } catch (err) {
      // NATS is closed: nothing was sent; the execution ends failed, with its outcome.
      const e = guestFailure(err, ticket.row.vmId, ticket.where.nodeId);
      this.track(id, undefined, ticket, runId);
      void this.finish(id, { status: 'failed', error: `${e.code}: ${e.message}` }, () =>
        ticket.failed(e, 0),
      );
      return;
    }
    this.track(id, sub, ticket, runId);
    void this.run(id, ticket, request, Date.now(), false);
  }

  private track(
    id: string,
    sub: OutputFeed | undefined,
    ticket: DrivenTicket,
    runId: string | undefined,
    started = Date.now(),
  ): void {
    let stop!: () => void;
    const whenStopped = new Promise<undefined>((resolve) => {
      stop = () => resolve(undefined);
    });
    const { execStoredMaxBytes, execBufferMaxBytes } = this.config.output;
    this.driving.set(id, {
      sub,
      seq: 0,
      buffer: [],
      redactors: this.streamRedactors(),
      budget: new OutputBudget(execStoredMaxBytes, execBufferMaxBytes),
      runId,
      nodeId: ticket.where.nodeId,
      ticket,
      started,
      stopped: false,
      stop,
      whenStopped,
    });
  }

  /**
   * Ends an execution this replica drives without waiting for its agent's answer (a cancel whose
   * answer was lost: the daemon died, the reply never came). The end and the outcome row are
   * written here; the answer, should it still come, changes nothing. False when this replica
   * does not drive it.
   */
  async stopNow(id: string, end: ExecutionEnd, why: string): Promise<boolean> {
    const d = this.driving.get(id);
    if (!d || d.stopped) {
      return false;
    }
    d.stopped = true;
    d.stop();
    const failure = new VmGuestException(VmGuestErrorCode.AGENT_NOT_CONNECTED, why);
    await this.finish(id, end, () => d.ticket.failed(failure, Date.now() - d.started, end.status));
    return true;
  }

  /**
   * Takes the execution's chunks in order, each once (takesChunk), redacted, within budget. A
   * chunk with no room in the buffer while the database is slow is not dropped: read from the
   * stream, it waits for a flush; over NATS core, the stream is read instead (replay), at this
   * replica's pace. Only without a stream is it cut (and the execution flagged).
   */
  private subscribeOutput(id: string, ticket: DrivenTicket, fromStart = false): OutputFeed {
    const feed = this.feeds.follow(
      ticket.where.nodeId,
      id,
      (data, source) => {
        try {
          const d = this.driving.get(id);
          if (!d) {
            return;
          }
          const raw = chunkOf(data);
          if (!takesChunk(d.seq, raw.seq, source, () => feed.replay())) {
            return;
          }
          // What the redactor holds back goes out with this chunk.
          const bytes = raw.data.length + d.redactors[raw.stream].heldBytes;
          if (d.budget.mustWait(bytes)) {
            if (source === 'stream') {
              return this.roomFor(id, d, bytes).then(() => {
                if (this.driving.get(id) === d && !d.stopped && raw.seq > d.seq) {
                  this.take(d, raw, true);
                }
              });
            }
            if (feed.replay()) {
              // The stream brings this chunk again, after those taken.
              return;
            }
            // No stream to wait on: what the buffer cannot hold is cut.
            this.take(d, raw, false);
            return;
          }
          this.take(d, raw, true);
        } catch (e) {
          this.log.warn(`dropped output of ${id}: ${(e as Error).message}`);
        }
      },
      { fromStart },
    );
    return feed;
  }

  /** `roomMade`: the buffer had room for the chunk (mustWait said so, or a flush made it). */
  private take(d: Driving, raw: OutputChunk, roomMade: boolean): void {
    d.seq = raw.seq;
    d.budget.saw(raw.data.length);
    // Redacted before it is stored: the store never holds what the patterns match.
    const c = d.budget.admit(redactChunk(d.redactors, raw), roomMade);
    if (c) {
      d.buffer.push(c);
    }
  }

  /** Flushes until a chunk of `bytes` fits the buffer (or the execution ends). */
  private async roomFor(id: string, d: Driving, bytes: number): Promise<void> {
    while (this.driving.get(id) === d && !d.stopped && d.budget.mustWait(bytes)) {
      try {
        await this.flush(id);
      } catch {
        // the database is away: the stream keeps the output meanwhile
        await sleep(ROOM_RETRY_MS);
      }
    }
  }

  /**
   * The agent has answered: output it sent before the answer may still be on its way (in the
   * stream, or behind this replica's backlog). Waits until as many bytes arrived as the command
   * wrote, or none arrived for LQ_EXEC_OUTPUT_DRAIN_MS.
   */
  private async drain(d: Driving, total: number): Promise<void> {
    if (d.budget.receivedBytes < total) {
      // Over NATS core the output published before the reply arrives before it: what is
      // missing was dropped on the way, and the stream has it.
      d.sub?.replay();
    }
    // Up to drainMs without any output arriving: a reader held up by a slow database goes on.
    const { drainMs } = this.config.execOutputStream;
    let until = Date.now() + drainMs;
    let seen = d.budget.receivedBytes;
    while (d.budget.receivedBytes < total && Date.now() < until && !d.stopped) {
      await sleep(50);
      if (d.budget.receivedBytes > seen) {
        seen = d.budget.receivedBytes;
        until = Date.now() + drainMs;
      }
    }
  }

  /**
   * Runs the request to its end (or the agent's loss) and records the outcome. `attach`: the
   * request has no command (an adopted execution): an agent that does not know it refuses it.
   */
  private async run(
    id: string,
    ticket: DrivenTicket,
    request: ExecuteRequest,
    started: number,
    attach: boolean,
  ): Promise<void> {
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
    const d = this.driving.get(id)!;
    let response: ExecuteResponse | undefined;
    try {
      response = await Promise.race([send(), d.whenStopped]);
    } catch (err) {
      if (d.stopped) {
        return;
      }
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
      if (d.stopped) {
        return;
      }
      if (!response) {
        // An attach the agent refused: it does not know the execution any more (restarted, or
        // its result was acknowledged and is no longer held): lost, and nothing was run again.
        const forgotten =
          attach &&
          e instanceof VmGuestException &&
          e.code === VmGuestErrorCode.AGENT_ERROR &&
          e.agentCode === 'INVALID_REQUEST';
        const lost = forgotten || isGuestError(e, VmGuestErrorCode.AGENT_NOT_CONNECTED);
        const failure = forgotten
          ? new VmGuestException(
              VmGuestErrorCode.AGENT_NOT_CONNECTED,
              `its control plane stopped mid-run and the agent no longer holds its result (restarted, or delivered to the stopped replica): ${e.message}`,
            )
          : lost
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
    if (d.stopped || !response) {
      // Ended without this answer (stopNow wrote the end and the outcome).
      return;
    }
    const r = response;
    const total = Number(r.stdoutTotalBytes) + Number(r.stderrTotalBytes);
    await this.drain(d, total);
    // Output that never arrived (NATS core drops it for a replica that falls behind; the
    // stream drops its oldest when full): say so, never silently.
    d.budget.settle(total);
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
    ticket: DrivenTicket,
    started: number,
    send: () => Promise<ExecuteResponse>,
  ): Promise<ExecuteResponse | undefined> {
    const deadline = Date.now() + this.config.execLostGraceMs;
    while (Date.now() < deadline && !this.driving.get(id)?.stopped) {
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

  /**
   * Stores the last output, then the end, then the outcome row, all once: the first end
   * recorded wins, and only its writer writes the outcome (a cancel that ended the execution
   * without the agent's answer has written it already).
   */
  private async finish(id: string, end: ExecutionEnd, outcome: () => Promise<unknown>) {
    // Output published just before the reply may still be on its way.
    await sleep(50);
    const d = this.driving.get(id);
    if (d) {
      this.heldOutput(d);
    }
    let won = true;
    for (let attempt = 0; ; attempt++) {
      try {
        if (d) {
          await this.flush(id);
        }
        won = await this.repo.finish(id, end);
        break;
      } catch (err) {
        if (attempt >= 30) {
          this.log.error(`execution ${id}: end not recorded: ${(err as Error).message}`);
          break;
        }
        await sleep(1000);
      }
    }
    d?.sub?.stop();
    this.driving.delete(id);
    let status = end.status;
    if (won) {
      await outcome();
    } else {
      this.log.log(`execution ${id} had already ended; its ${end.status} answer is not recorded`);
      status = (await this.repo.get(id).catch(() => undefined))?.status ?? status;
    }
    this.events.emit('ended', id, status, d?.runId);
  }

  private streamRedactors(): ChunkRedactors {
    const hold = this.config.audit.outputRedaction.holdBytes;
    return {
      stdout: new StreamRedactor(this.redactor, hold),
      stderr: new StreamRedactor(this.redactor, hold),
    };
  }

  /**
   * The output each stream's redactor still holds (an unfinished last line), redacted, as
   * chunks after the last one: the execution has ended and nothing more comes.
   */
  private heldOutput(d: Driving): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const r = d.redactors[stream].end();
      if (r.data.length === 0) {
        continue;
      }
      d.seq++;
      const c = d.budget.admit({
        seq: d.seq,
        stream,
        data: Buffer.from(r.data),
        droppedBytes: 0,
        ...(r.count > 0 ? { redactions: r.count } : {}),
      });
      if (c) {
        d.buffer.push(c);
      }
    }
  }

  /**
   * Stores the chunks buffered so far. One flush at a time per execution, in order: the timer's
   * flush may still be writing when the end's flush starts, and the end must not be recorded
   * before every chunk is stored (a follower takes the end as the last word and reads the store).
   */
  private flush(id: string): Promise<void> {
    const d = this.driving.get(id);
    if (!d) {
      return Promise.resolve();
    }
    const next = (d.flushing ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.flushNow(id, d));
    d.flushing = next;
    return next;
  }

  private async flushNow(id: string, d: Driving): Promise<void> {
    const flag = d.budget.truncated && !d.budget.flagged;
    if (d.buffer.length === 0 && !flag) {
      return;
    }
    const chunks = d.buffer.splice(0);
    try {
      await this.repo.appendOutput(id, chunks, flag);
    } catch (err) {
      d.buffer.unshift(...chunks);
      throw err;
    }
    d.budget.wrote(chunks);
    if (flag) {
      d.budget.flagged = true;
      this.log.warn(`execution ${id}: output past its bound is not stored (output_truncated)`);
    }
  }

  private async flushAll(): Promise<void> {
    for (const [id, d] of this.driving) {
      if (d.buffer.length === 0 && !(d.budget.truncated && !d.budget.flagged)) {
        // Nothing to store (most of a fleet run's executions, every 200 ms): no await each.
        continue;
      }
      await this.flush(id).catch((err: Error) =>
        this.log.warn(`output of ${id} not stored yet: ${err.message}`),
      );
    }
  }

  /**
   * Executions this replica drives that another replica ended (a cancel there whose agent's
   * answer was lost): stop waiting for their answer, which would change nothing.
   */
  private async dropEndedElsewhere(): Promise<void> {
    const ids = [...this.driving.keys()];
    if (ids.length === 0) {
      return;
    }
    try {
      for (const id of await this.repo.endedAmong(ids)) {
        const d = this.driving.get(id);
        if (d && !d.stopped) {
          d.stopped = true;
          d.stop();
          await this.finish(id, { status: 'cancelled' }, () => Promise.resolve());
        }
      }
    } catch {
      // the database is away; next time
    }
  }

  /**
   * Intents of asynchronous executions whose replica stopped after writing them and before
   * recording the execution (ExecutionsService.start): nothing was sent, and no replica would
   * ever write their outcome. Once older than a lease, each is recorded `failed` (never started)
   * and given its outcome; the execution row is the claim, so a replica that records it after
   * all (it was only slow) is refused and writes no outcome, and of several replicas sweeping,
   * one writes it. Every replica looks through intents written since its last look.
   */
  private async closeUnrecorded(): Promise<void> {
    if (this.closingUnrecorded) {
      return;
    }
    this.closingUnrecorded = true;
    try {
      await walkIntentPages(
        this.unrecordedAfter,
        ADOPT_BATCH,
        (after, limit) => this.repo.unrecordedIntents(after, this.config.leaseMs, limit),
        async (i) => {
          const error =
            'not started: its control plane stopped after writing its intent and before recording it; nothing was sent to the guest';
          if (await this.repo.insertNeverStarted(i, error)) {
            this.log.warn(`execution ${i.request_id}: ${error}`);
            await this.audit.record({
              kind: 'outcome',
              requestId: i.request_id,
              actor: i.actor,
              authMethod: i.auth_method,
              sourceIp: i.source_ip,
              vmId: i.vm_id,
              nodeId: i.node_id,
              projectId: i.project_id,
              operation: 'execute',
              status: 'failed',
              error,
              params: { execution_id: i.request_id, never_started: true, swept: true },
            });
          }
        },
        (after) => {
          this.unrecordedAfter = after;
        },
      );
    } catch {
      // the database is away; next time, from where it stopped
    } finally {
      this.closingUnrecorded = false;
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
