import { create } from '@bufbuild/protobuf';
import {
  AgentLimitsSchema,
  AgentStreamReader,
  AgentReadyEventSchema,
  ErrorCode,
  GUEST_OPERATION_TABLE,
  OPERATION_OF_REQUEST,
  ErrorSchema,
  SyncResponseSchema,
  agentMessage,
  capabilitiesOf,
  encodeAgentMessage,
  JOINED_FRAME_MAX_BYTES,
  type AgentInfo,
  type AgentLimits,
  type AgentMessage,
  type AgentPayload,
  type FrameIssue,
  type SyncRequest,
  type TelemetryReport,
} from '@lq/proto';
import { enabledOperations, operationBlockedBy, type AgentConfig } from './config.js';
import { type AgentOpError, toAgentOpError } from './errors.js';
import type { HostChannel } from './channel/host-channel.js';
import type { HandlerContext, OperationHandler, RequestCase } from './handlers/handler.js';
import type { Logger } from './logger.js';
import { BufferPool, type PooledBuffer } from './memory/buffer-pool.js';
import { type Drainable, MemoryReclaimer } from './memory/reclaimer.js';
import { ResultCache } from './result-cache.js';
import type { AgentListener, EarlyResponder } from './early-responder.js';
import { AGENT_VERSION, PROTOCOL_VERSION } from './version.js';

export { AGENT_VERSION, PROTOCOL_VERSION };

const MAX_MESSAGE_ID_LENGTH = 128;
const MESSAGE_ID_PATTERN = /^[\x21-\x7e]+$/;
/** Room beside a file write's chunk in its frame: path, ids, limits and framing. */
const RECEIVE_ENVELOPE_BYTES = 64 * 1024;

/** What the host must respect when sizing requests, as announced in sync and info. */
export function agentLimits(config: AgentConfig): AgentLimits {
  return create(AgentLimitsSchema, {
    maxFrameBytes: config.max_frame_bytes,
    fileChunkMaxBytes: config.files.chunk_max_bytes,
    outputLimitMaxBytes: config.exec.output_limit_max_bytes,
    execTimeoutMaxMs: config.exec.max_timeout_ms,
  });
}

export interface AgentDeps {
  config: AgentConfig;
  channel: HostChannel;
  handlers: OperationHandler[];
  log: Logger;
  /** Facts for AgentReady / GetInfo. */
  collectInfo(): Promise<AgentInfo>;
  /** One telemetry sample; omitted when telemetry is off. */
  sampleTelemetry?(): Promise<TelemetryReport>;
  /** True while filesystems are frozen (only ping, quiesce status and thaw are served). */
  isFrozen?(): boolean;
  /** An AgentReady has been written (a pending self-update is confirmed by it). */
  readySent?(): void;
  /** Request cases this OS cannot serve (GuestPlatform.unsupported): kept out of capabilities. */
  unserved?: readonly string[];
  /** Memory the handlers keep for reuse, let go of when the agent idles (open files' read-ahead). */
  reclaimable?: readonly Drainable[];
  /** Other housekeeping at every idle reclaim (lowering runtime helper threads started since). */
  whenIdle?: () => void;
}

export interface AgentStats {
  requests: number;
  errors: number;
  frameIssues: number;
  skippedBytes: number;
}

/**
 * The agent's core: frames in, requests dispatched to handlers, replies out. It owns the sync
 * handshake, policy checks, request-id validation, result retention and the periodic events;
 * handlers own the work.
 */
export class Agent {
  readonly startedAt = new Date();
  readonly stats: AgentStats = { requests: 0, errors: 0, frameIssues: 0, skippedBytes: 0 };
  private readonly config: AgentConfig;
  private readonly channel: HostChannel;
  private readonly log: Logger;
  private readonly handlers = new Map<RequestCase, OperationHandler>();
  private readonly reader: AgentStreamReader;
  private readonly results: ResultCache;
  private readonly buffers: BufferPool;
  private readonly receiveBuffers: BufferPool;
  private readonly frameBuffers: BufferPool;
  /** Requests in progress, and giving memory back once they are over (config.memory). */
  readonly memory: MemoryReclaimer;
  private telemetryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private eventSeq = 0;
  private readPaused = false;
  /** Requests read while paused (at most one read's worth), served as others end. */
  private readonly backlog: Array<
    [string, Extract<AgentPayload, { case: RequestCase }>, (() => void) | undefined]
  > = [];
  private synced = false;

  constructor(private readonly deps: AgentDeps) {
    this.config = deps.config;
    this.channel = deps.channel;
    this.log = deps.log;
    for (const handler of deps.handlers) {
      this.handlers.set(handler.requestCase, handler);
    }
    this.results = new ResultCache(
      this.config.results.retention_ms,
      this.config.results.cache_bytes,
    );
    this.buffers = new BufferPool(
      this.config.files.chunk_max_bytes,
      this.config.memory.buffer_pool_size,
    );
    // A file write's frame (its chunk and the envelope) is assembled in one of these instead of
    // a fresh buffer per frame; released once its reply is written (FileWriteHandler keeps no
    // view of the request's bytes past its answer).
    this.receiveBuffers = new BufferPool(
      this.config.files.chunk_max_bytes + RECEIVE_ENVELOPE_BYTES,
      this.config.memory.buffer_pool_size,
    );
    // A small reply with bulk bytes (a 4 KiB file chunk) is joined in one of these rather than
    // a fresh buffer per reply, given back once written: a 4 KiB read then leaves a third less
    // garbage, and the agent collects a third less often in the middle of a transfer.
    this.frameBuffers = new BufferPool(JOINED_FRAME_MAX_BYTES, this.config.memory.buffer_pool_size);
    this.reader = new AgentStreamReader({
      maxFrameBytes: this.config.max_frame_bytes,
      partialFrameTimeoutMs: this.config.partial_frame_timeout_ms,
      onIssue: (issue) => this.onFrameIssue(issue),
      onMessage: (message) => this.onMessage(message),
      receiveBuffers: this.receiveBuffers,
    });
    this.memory = new MemoryReclaimer(
      this.config.memory.idle_reclaim_ms,
      [this.buffers, this.receiveBuffers, this.frameBuffers, ...(deps.reclaimable ?? [])],
      this.log,
      this.config.memory.collect_after_output_bytes,
      deps.whenIdle,
    );
  }

  get limits(): AgentLimits {
    return agentLimits(this.config);
  }

  get capabilities(): string[] {
    return capabilitiesOf(enabledOperations(this.config), this.deps.unserved);
  }

  async start(): Promise<void> {
    await this.channel.start(this.channelListener());
    this.started();
  }

  /**
   * Takes over a channel an EarlyResponder started (main.ts): a host it already synced with gets
   * what follows a sync here (AgentReady, telemetry), then the agent reads what the responder
   * kept, and the channel's events are the agent's from then on.
   */
  takeOver(early: EarlyResponder): void {
    const state = early.state;
    this.started();
    this.stats.requests += state.requests;
    if (state.synced && this.channel.connected) {
      this.synced = true;
      this.afterSync();
    } else if (!state.heard) {
      void this.announce();
    }
    // Otherwise a host that never synced with this process is talking to it: an agent restarted
    // behind QEMU's open socket, whose host does not know yet. An AgentReady now would reach the
    // host after requests this process already read (the early phase kept them; more are on
    // their way): taking it for a restart, the host would fail them as never run while they run
    // here (PROTOCOL.md §5). The host finds the restart itself (keepalive pong, resync), as it
    // does when the first byte reaches an agent that has started.
    early.handOver(this.channelListener());
  }

  private channelListener(): AgentListener {
    return {
      onConnect: () => this.onConnect(),
      onData: (chunk) => this.onData(chunk),
      onDisconnect: (reason) => this.onDisconnect(reason),
      betweenFrames: () => !this.readPaused && this.reader.frames.bufferedBytes === 0,
      pingServed: () => this.stats.requests++,
    };
  }

  private started(): void {
    this.sweepTimer = setInterval(() => this.results.sweep(), 30_000);
    this.sweepTimer.unref();
    this.log.info('agent started', {
      version: AGENT_VERSION,
      channel: this.channel.description,
      config: this.config.source,
      capabilities: this.capabilities,
    });
  }

  async stop(): Promise<void> {
    this.reader.close();
    this.memory.stop();
    clearInterval(this.telemetryTimer);
    clearInterval(this.sweepTimer);
    await this.channel.close();
  }

  private onConnect(): void {
    this.reader.reset();
    this.synced = false;
    this.log.info('host connected', { channel: this.channel.description });
  }

  private onDisconnect(reason: string): void {
    this.reader.reset();
    this.backlog.length = 0; // its host is gone: no one would read the replies
    this.synced = false;
    this.stopTelemetry();
    this.log.info('host disconnected', { reason });
  }

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
  }

  private onFrameIssue(issue: FrameIssue): void {
    this.stats.frameIssues++;
    if (issue.kind === 'garbage') {
      this.stats.skippedBytes += issue.bytes;
    }
    this.log.warn('channel: dropped bytes', {
      kind: issue.kind,
      bytes: issue.bytes,
      detail: issue.detail,
    });
  }

  private onMessage(message: AgentMessage): void {
    const id = message.messageId;
    const payload = message.payload;
    switch (payload.case) {
      case 'sync':
        this.onSync(id, payload.value);
        return;
      case 'resultAck':
        this.results.ack(payload.value.messageIds);
        return;
      case undefined:
        this.replyError(
          id,
          ErrorCode.UNKNOWN_OPERATION,
          'unknown request type (a field this agent does not know; newer host?)',
        );
        return;
      default:
        if (OPERATION_OF_REQUEST.has(payload.case)) {
          this.onRequest(
            id,
            payload as Extract<AgentPayload, { case: RequestCase }>,
            this.reader.takeReceiveBuffer(message),
          );
        } else {
          // A response or an event sent to the agent.
          this.replyError(id, ErrorCode.INVALID_REQUEST, `${payload.case} is not a request`);
        }
    }
  }

  private onSync(id: string, sync: SyncRequest): void {
    const version = Math.min(sync.protocolVersion || PROTOCOL_VERSION, PROTOCOL_VERSION);
    this.synced = true;
    void this.send(
      agentMessage(id, {
        case: 'syncResponse',
        value: create(SyncResponseSchema, {
          nonce: sync.nonce,
          protocolVersion: version,
          agentVersion: AGENT_VERSION,
          capabilities: this.capabilities,
          limits: this.limits,
        }),
      }),
    );
    this.log.info('host synced', { host: sync.hostId, protocolVersion: version });
    this.afterSync();
  }

  private afterSync(): void {
    void this.sendReady('sync');
    this.startTelemetry();
    this.memory.coldPathRan();
  }

  /** Announces the agent when it starts on an already-attached channel. */
  async announce(): Promise<void> {
    if (this.channel.connected) {
      await this.sendReady('start');
    }
  }

  private async sendReady(reason: string): Promise<void> {
    try {
      const info = await this.deps.collectInfo();
      await this.send(
        agentMessage(this.nextEventId(), {
          case: 'agentReady',
          value: create(AgentReadyEventSchema, { info, reason }),
        }),
      );
      if (this.channel.connected) {
        this.deps.readySent?.();
      }
    } catch (err) {
      this.log.error('could not collect agent info', { error: (err as Error).message });
    }
  }

  private startTelemetry(): void {
    this.stopTelemetry();
    const sample = this.deps.sampleTelemetry?.bind(this.deps);
    if (!sample || this.config.telemetry_interval_ms === 0) {
      return;
    }
    void sample().catch(() => undefined); // primes CPU deltas
    this.telemetryTimer = setInterval(() => {
      if (!this.synced) {
        return;
      }
      sample().then(
        (report) =>
          this.send(agentMessage(this.nextEventId(), { case: 'telemetry', value: report })),
        (err: Error) => this.log.warn('telemetry sample failed', { error: err.message }),
      );
    }, this.config.telemetry_interval_ms);
    this.telemetryTimer.unref();
  }

  private stopTelemetry(): void {
    clearInterval(this.telemetryTimer);
    this.telemetryTimer = undefined;
  }

  /** `release` gives back the lent buffer the request's bytes are views of (if they are). */
  private onRequest(
    id: string,
    payload: Extract<AgentPayload, { case: RequestCase }>,
    release?: () => void,
  ): void {
    if (this.readPaused) {
      this.backlog.push([id, payload, release]);
      return;
    }
    if (!this.serve(id, payload, release)) {
      release?.(); // answered without a handler reading the bytes
    }
  }

  /** Starts the request's handler; false when it was answered without one. */
  private serve(
    id: string,
    payload: Extract<AgentPayload, { case: RequestCase }>,
    release: (() => void) | undefined,
  ): boolean {
    this.stats.requests++;
    if (id.length === 0 || id.length > MAX_MESSAGE_ID_LENGTH || !MESSAGE_ID_PATTERN.test(id)) {
      this.replyError(
        id.length > MAX_MESSAGE_ID_LENGTH ? '' : id,
        ErrorCode.INVALID_REQUEST,
        `message_id must be 1-${MAX_MESSAGE_ID_LENGTH} printable ASCII characters`,
      );
      return false;
    }
    // The table names the operation, its policy, whether a frozen guest serves it and whether
    // its result is retained.
    const operation = OPERATION_OF_REQUEST.get(payload.case)!;
    const def = GUEST_OPERATION_TABLE[operation];
    if (this.deps.isFrozen?.() && !def.whileFrozen) {
      this.replyError(
        id,
        ErrorCode.FROZEN,
        `filesystems are frozen: only ping, quiesce status and thaw are served until thaw`,
      );
      return false;
    }
    const handler = this.handlers.get(payload.case);
    if (!handler) {
      this.replyError(
        id,
        ErrorCode.UNKNOWN_OPERATION,
        `operation ${payload.case} is not implemented by this agent`,
      );
      return false;
    }
    const blockedBy = operationBlockedBy(this.config, def.policy);
    if (blockedBy !== null) {
      this.replyError(
        id,
        ErrorCode.OPERATION_BLOCKED,
        `operation ${def.policy} is blocked by policy (${blockedBy} in ${this.config.source})`,
      );
      return false;
    }

    const retained = def.retained;
    const existing = retained ? this.results.get(id) : undefined;
    if (existing) {
      this.log.debug('request id seen before: replying with its result', { id });
      void existing.then(
        (result) => this.send(agentMessage(id, result)),
        (err: unknown) => this.replyOpError(id, toAgentOpError(err, operation)),
      );
      return false;
    }

    this.memory.begin();
    // A host that pipelines requests faster than they finish is read no further until half of
    // them are done: each request holds its work and, until written, its reply, so an agent
    // that kept reading would grow without bound. Requests already read wait in the backlog.
    if (!this.readPaused && this.memory.active >= this.config.memory.max_inflight_requests) {
      this.readPaused = true;
      this.channel.pause();
    }
    // Only a handler that reads the request's bytes no more once it has answered lets the buffer
    // go back for reuse; with any other, the buffer is left to the garbage collector.
    const ctx = new RequestContext(
      id,
      this.log,
      this.buffers,
      this.emitEvent,
      handler.doneWithRequestAtAnswer === true ? release : undefined,
    );
    const moved = payloadBytes(payload);
    if (handler.handleNow !== undefined && !retained) {
      // A reply the handler can make at once (a small local read) is sent at once: no promise
      // between the request and its reply.
      let now: AgentPayload | undefined;
      try {
        now = handler.handleNow(payload.value, ctx);
      } catch (err) {
        this.failed(ctx, operation, err, moved);
        return true;
      }
      if (now !== undefined) {
        void this.reply(ctx, now, moved);
        return true;
      }
    }
    let work: Promise<AgentPayload>;
    try {
      work = handler.handle(payload.value, ctx);
    } catch (err) {
      work = Promise.reject(toAgentOpError(err, operation));
    }
    if (retained) {
      this.results.track(id, work, payloadSize);
    }
    void this.answer(ctx, operation, work, moved);
    return true;
  }

  /** Replies with the handler's result or error, then ends the request. */
  private async answer(
    ctx: RequestContext,
    operation: string,
    work: Promise<AgentPayload>,
    moved: number,
  ): Promise<void> {
    let result: AgentPayload;
    try {
      result = await work;
    } catch (err) {
      this.failed(ctx, operation, err, moved);
      return;
    }
    await this.reply(ctx, result, moved);
  }

  /** Replies with a handler's error and ends the request. */
  private failed(ctx: RequestContext, operation: string, err: unknown, moved: number): void {
    ctx.releaseRequest?.();
    this.replyOpError(ctx.messageId, toAgentOpError(err, operation));
    this.requestEnded(moved);
  }

  /** Sends a handler's result; the request ends once it has been written (or could not be). */
  private reply(ctx: RequestContext, result: AgentPayload, moved: number): Promise<void> {
    let written: Promise<void>;
    try {
      written = this.send(agentMessage(ctx.messageId, result));
    } catch (err) {
      written = Promise.reject(toAgentOpError(err, 'reply'));
    }
    return written.finally(() => {
      ctx.releaseRequest?.();
      ctx.replied();
      this.requestEnded(moved + payloadBytes(result), droppedBytes(result));
    });
  }

  private readonly emitEvent = (event: AgentPayload): void =>
    void this.send(agentMessage(this.nextEventId(), event));

  private requestEnded(bytes: number, dropped = 0): void {
    this.memory.end(bytes, dropped);
    if (this.readPaused && this.memory.active <= this.config.memory.max_inflight_requests / 2) {
      this.readPaused = false;
      while (this.backlog.length > 0 && !this.readPaused) {
        const [id, payload, release] = this.backlog.shift()!;
        this.onRequest(id, payload, release);
      }
      if (!this.readPaused) {
        this.channel.resume();
      }
    }
  }

  private replyOpError(id: string, err: AgentOpError): void {
    this.replyError(id, err.code, err.message);
  }

  private replyError(id: string, code: ErrorCode, message: string): void {
    this.stats.errors++;
    this.log.debug('request failed', { id, code: ErrorCode[code], message });
    void this.send(
      agentMessage(id, { case: 'error', value: create(ErrorSchema, { code, message }) }),
    );
  }

  private send(message: AgentMessage): Promise<void> {
    if (!this.channel.connected) {
      return Promise.resolve();
    }
    let parts: Uint8Array[];
    // The buffer a small reply with bulk bytes is joined in (one per frame at most).
    let loan: PooledBuffer | undefined;
    try {
      parts = encodeAgentMessage(message, this.config.max_frame_bytes, this.lendFrameBuffer);
    } catch (err) {
      this.lentFrameBuffer?.release();
      this.lentFrameBuffer = undefined;
      // A reply that cannot fit a frame is a bug in a handler's bounds; say so instead.
      const reply = agentMessage(message.messageId, {
        case: 'error',
        value: create(ErrorSchema, {
          code: ErrorCode.TOO_LARGE,
          message: `reply does not fit max_frame_bytes ${this.config.max_frame_bytes}: ${(err as Error).message}`,
        }),
      });
      parts = encodeAgentMessage(reply, this.config.max_frame_bytes);
    } finally {
      loan = this.lentFrameBuffer;
      this.lentFrameBuffer = undefined;
    }
    const written = this.channel.write(parts).catch((err: Error) => {
      this.log.debug('reply not written', { id: message.messageId, error: err.message });
    });
    // The channel is done with the frame's bytes once its write has settled.
    return loan === undefined ? written : written.then(loan.release);
  }

  /** The buffer lent to the frame being encoded (send() takes it right after encoding). */
  private lentFrameBuffer: PooledBuffer | undefined;
  private readonly lendFrameBuffer = (bytes: number): Buffer =>
    (this.lentFrameBuffer = this.frameBuffers.acquire(bytes)).buf;

  private nextEventId(): string {
    return `evt-${++this.eventSeq}`;
  }
}

/** The bulk bytes a request or reply carries (what makes a reclaim worth it afterwards). */
function payloadBytes(payload: AgentPayload): number {
  switch (payload.case) {
    case 'fileWrite':
      return payload.value.data.length;
    case 'fileReadResponse':
    case 'fileHandleReadResponse':
      return payload.value.data.length;
    case 'executeResponse':
      return payload.value.stdout.length + payload.value.stderr.length;
    default:
      return 0;
  }
}

/** A command's output read and dropped past its cap: garbage (memory.collect_after_output_bytes). */
function droppedBytes(payload: AgentPayload): number {
  if (payload.case !== 'executeResponse') {
    return 0;
  }
  const r = payload.value;
  return (
    Math.max(0, Number(r.stdoutTotalBytes) - r.stdout.length) +
    Math.max(0, Number(r.stderrTotalBytes) - r.stderr.length)
  );
}

function payloadSize(payload: AgentPayload): number {
  if (payload.case === 'executeResponse') {
    return payload.value.stdout.length + payload.value.stderr.length + 256;
  }
  return 256;
}

/** What a handler is given for one request (HandlerContext), and what is run once it is answered. */
class RequestContext implements HandlerContext {
  private after: Array<() => void> | undefined;

  constructor(
    readonly messageId: string,
    readonly log: Logger,
    readonly buffers: BufferPool,
    private readonly sendEvent: (event: AgentPayload) => void,
    /** Gives back the lent buffer the request's bytes are in, if the handler lets it go. */
    readonly releaseRequest: (() => void) | undefined,
  ) {}

  afterReply(fn: () => void): void {
    (this.after ??= []).push(fn);
  }

  emit(payload: AgentPayload): void {
    this.sendEvent(payload);
  }

  /** Runs what afterReply was given, in order. */
  replied(): void {
    for (const fn of this.after ?? []) {
      fn();
    }
  }
}
