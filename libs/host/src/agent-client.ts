import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  ResultAckSchema,
  PingRequestSchema,
  SyncRequestSchema,
  type AgentInfo,
  type AgentLimits,
  type AgentMessage,
  DEFAULT_MAX_FRAME_BYTES,
  type FrameIssue,
  RETAINED_REQUESTS,
  AgentStreamReader,
  agentMessage,
  encodeAgentMessage,
  type AgentPayload,
  type AgentPayloadCase,
  type PayloadOf,
} from '@lq/proto';
import { AckBatcher, PendingRequests, type PendingRequest } from './pending-requests.js';
import { SyncHandshake } from './sync-handshake.js';
import {
  AgentNotConnectedError,
  AgentRequestError,
  AgentTimeoutError,
  type AgentClientOptions,
  type AgentClientState,
  type RequestOptions,
} from './agent-client.types.js';

export const HOST_PROTOCOL_VERSION = 1;

export * from './agent-client.types.js';

/** Agent start and request send times compare across two clocks and a channel: this much slack. */
const RESTART_SLACK_MS = 250;
/** After a SyncResponse, how long re-sends wait for the AgentReady that tells a restart apart. */
const RESEND_WAIT_MS = 1000;

/** Results the agent retains until acknowledged (the operation table's `retained`). */
const ACKED_CASES: ReadonlySet<string> = RETAINED_REQUESTS;

/**
 * The host end of one agent channel (PROTOCOL.md): connect, sync with a nonce, correlate replies
 * by message id, enforce deadlines, resync after a timeout while the agent answers nothing,
 * reconnect with backoff, acknowledge retained results. Used by the node daemon (one per VM) and
 * by agentctl.
 *
 * Events: 'state' (state), 'ready' (AgentInfo), 'telemetry' (TelemetryReport),
 * 'exec-output' (ExecOutputEvent),
 * 'message' (any unsolicited AgentMessage), 'issue' (FrameIssue).
 */
export class AgentClient extends EventEmitter {
  readonly path: string;
  private readonly opts: Required<Omit<AgentClientOptions, 'path'>>;
  private socket: Socket | undefined;
  private readonly reader: AgentStreamReader;
  private _state: AgentClientState = 'disconnected';
  private readonly pending = new PendingRequests();
  private readonly waitingForReady = new Set<() => void>();
  private readonly sessionPrefix = randomBytes(4).toString('hex');
  private seq = 0;
  private readonly handshake: SyncHandshake;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private keepaliveInFlight = false;
  private resendTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last SyncResponse. */
  private syncedAt = 0;
  /** A SyncResponse came and the AgentReady that follows it has not (yet). */
  private readyAfterSync = false;
  /** performance.now() of the last reply to one of our requests (on any connection). */
  private answeredAt = -Infinity;
  private reconnectDelay: number;
  private readonly acks: AckBatcher;

  /** From the last sync. */
  agentVersion = '';
  protocolVersion = 0;
  capabilities: string[] = [];
  limits: AgentLimits | undefined;
  /**
   * From the last AgentReady; cleared by a sync from another agent version until its own
   * AgentReady comes (a status never pairs one agent's version with another's facts).
   */
  info: AgentInfo | undefined;
  /** started_at of the last AgentReady, kept through such a clearing: a restart is told by it. */
  private agentStartedAt: AgentInfo['startedAt'];
  /** When the last message from the agent arrived (kept as a number: it is set per message). */
  get lastSeen(): Date | undefined {
    return this.lastSeenMs === undefined ? undefined : new Date(this.lastSeenMs);
  }
  private lastSeenMs: number | undefined;
  connectedSince: Date | undefined;
  droppedFrames = 0;
  private readyOnThisConnection = false;
  /** The agent's bound on what we send; ours until the first sync says otherwise. */
  private sendMaxFrameBytes: number;

  constructor(options: AgentClientOptions) {
    super();
    this.path = options.path;
    this.opts = {
      hostId: options.hostId ?? 'host',
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      syncTimeoutMs: options.syncTimeoutMs ?? 1000,
      syncTimeoutMaxMs: options.syncTimeoutMaxMs ?? 8000,
      reconnect: options.reconnect ?? false,
      reconnectInitialMs: options.reconnectInitialMs ?? 100,
      reconnectMaxMs: options.reconnectMaxMs ?? 5000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      partialFrameTimeoutMs: options.partialFrameTimeoutMs ?? 1000,
      keepaliveMs: options.keepaliveMs ?? 5000,
    };
    this.reconnectDelay = this.opts.reconnectInitialMs;
    this.sendMaxFrameBytes = this.opts.maxFrameBytes;
    this.handshake = new SyncHandshake(
      { initialMs: this.opts.syncTimeoutMs, maxMs: this.opts.syncTimeoutMaxMs },
      () => this.sendSync(),
    );
    this.acks = new AckBatcher((ids) => this.sendAcks(ids));
    this.reader = new AgentStreamReader({
      maxFrameBytes: this.opts.maxFrameBytes,
      partialFrameTimeoutMs: this.opts.partialFrameTimeoutMs,
      onIssue: (issue: FrameIssue) => this.emit('issue', issue),
      onMessage: (message) => this.onMessage(message),
    });
  }

  get state(): AgentClientState {
    return this._state;
  }

  /**
   * True while the first handshake of a connection is under way: the channel is open but no
   * agent has answered yet (an agent not running behind a QEMU socket looks like this). A resync
   * of a connection that was ready is not a handshake in this sense.
   */
  get handshaking(): boolean {
    return this._state === 'syncing' && !this.readyOnThisConnection;
  }

  /** Starts connecting (and reconnecting, if enabled). */
  start(): void {
    if (this._state === 'closed') {
      throw new Error('client is closed');
    }
    this.connect();
  }

  /** Resolves once synced; rejects after timeoutMs or when the client stops trying. */
  waitReady(timeoutMs: number): Promise<void> {
    if (this._state === 'ready') {
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waitingForReady.delete(done);
        reject(
          new AgentNotConnectedError(
            `agent at ${this.path} not ready within ${timeoutMs} ms (state ${this._state})`,
          ),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waitingForReady.delete(done);
        if (this._state === 'ready') {
          resolve();
        } else {
          reject(new AgentNotConnectedError(`agent at ${this.path} is ${this._state}`));
        }
      };
      this.waitingForReady.add(done);
    });
  }

  /**
   * Sends a request and resolves with the agent's reply; an `Error` reply rejects with
   * AgentRequestError. Fails fast with AgentNotConnectedError when no agent is connected;
   * while a (re)sync is under way the request waits for it within its deadline.
   */
  request(payload: AgentPayload, options: RequestOptions = {}): Promise<AgentMessage> {
    const operation = payload.case ?? 'unknown';
    if (
      this._state === 'closed' ||
      this._state === 'disconnected' ||
      this._state === 'connecting'
    ) {
      return Promise.reject(
        new AgentNotConnectedError(`agent at ${this.path} is not connected (${this._state})`),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.opts.requestTimeoutMs;
    const id = options.messageId ?? `${this.sessionPrefix}-${++this.seq}`;
    // A retry of a request still in flight waits for the same reply; the agent would attach
    // it to the same work anyway (PROTOCOL.md §4).
    const inflight = this.pending.get(id);
    if (inflight) {
      return inflight.promise;
    }
    let frame: Uint8Array[];
    try {
      frame = encodeAgentMessage(agentMessage(id, payload), this.sendMaxFrameBytes);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // Written before the bookkeeping below: the agent starts on it while this thread sets up
    // the deadline and the pending entry (its reply is read in a later turn of the loop).
    const written = this._state === 'ready';
    if (written) {
      this.writeFrame(frame);
    }
    let entry!: PendingRequest;
    const promise = new Promise<AgentMessage>((resolve, reject) => {
      entry = {
        id,
        promise: undefined as unknown as Promise<AgentMessage>,
        operation,
        frame,
        resolve,
        reject,
        ack: ACKED_CASES.has(operation),
        // After the I/O already waiting: when this process's event loop was held up (a long
        // GC, a busy machine), timers run before the socket is read, and an answer that came
        // in time would be taken for none (and the silence for a stream out of step).
        expire: () => setImmediate(() => this.onTimeout(entry, timeoutMs)),
      };
    });
    entry.promise = promise;
    this.pending.add(entry, timeoutMs);
    if (written) {
      entry.sentAt = performance.now();
    }
    this.armKeepalive();
    return promise;
  }

  /** Convenience: the reply's payload, asserting its case. */
  async call<C extends AgentPayloadCase>(
    payload: AgentPayload,
    expect: C,
    options?: RequestOptions,
  ): Promise<PayloadOf<C>> {
    const reply = await this.request(payload, options);
    if (reply.payload.case !== expect) {
      throw new AgentRequestError(
        ErrorCode.INTERNAL,
        `agent answered ${payload.case} with ${reply.payload.case ?? 'an unknown message'}, expected ${expect}`,
      );
    }
    return reply.payload.value as unknown as PayloadOf<C>;
  }

  /** Fails everything pending and stops reconnecting. */
  close(): void {
    this.setState('closed');
    clearTimeout(this.reconnectTimer);
    this.handshake.stop();
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.resendTimer);
    this.acks.close();
    this.reader.close();
    this.socket?.end();
    this.socket?.destroy();
    this.socket = undefined;
    this.pending.fail(new AgentNotConnectedError(`client for ${this.path} closed`));
  }

  /** Writes raw bytes to the channel (fault-injection tests only). */
  writeRaw(bytes: Uint8Array): void {
    this.socket?.write(bytes);
  }

  private connect(): void {
    this.setState('connecting');
    const socket = createConnection(this.path);
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.reader.reset();
      this.reader.frames.maxFrameBytes = this.opts.maxFrameBytes;
      this.readyOnThisConnection = false;
      this.readyAfterSync = false;
      this.connectedSince = new Date();
      this.reconnectDelay = this.opts.reconnectInitialMs;
      this.handshake.reset();
      this.sendSync();
    });
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket !== socket) {
        return;
      }
      this.socket = undefined;
      this.handshake.stop();
      this.reader.reset();
      if (this._state === 'closed') {
        return;
      }
      this.connectedSince = undefined;
      this.setState('disconnected');
      this.pending.fail(new AgentNotConnectedError(`connection to agent at ${this.path} lost`));
      if (this.opts.reconnect) {
        this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelay);
        this.reconnectDelay = Math.min(this.reconnectDelay * 2, this.opts.reconnectMaxMs);
      }
    });
  }

  // PROTOCOL.md §5: frames are ignored until the reply to the handshake's nonce.
  private sendSync(): void {
    if (!this.socket || this._state === 'closed') {
      return;
    }
    this.setState('syncing');
    const nonce = this.handshake.next();
    this.write(
      agentMessage(`sync-${this.sessionPrefix}-${++this.seq}`, {
        case: 'sync',
        value: create(SyncRequestSchema, {
          nonce,
          protocolVersion: HOST_PROTOCOL_VERSION,
          hostId: this.opts.hostId,
        }),
      }),
    );
  }

  private onMessage(message: AgentMessage): void {
    this.lastSeenMs = Date.now();
    const payload = message.payload;
    if (this._state === 'syncing' && payload.case !== 'syncResponse') {
      // Not ours until the handshake completes, except replies to requests of this session.
      if (!this.pending.has(message.messageId)) {
        this.droppedFrames++;
        return;
      }
    }
    switch (payload.case) {
      case 'syncResponse': {
        if (!this.handshake.answer(payload.value.nonce)) {
          this.droppedFrames++;
          return;
        }
        if (this.agentVersion !== '' && payload.value.agentVersion !== this.agentVersion) {
          this.info = undefined;
        }
        this.agentVersion = payload.value.agentVersion;
        this.protocolVersion = payload.value.protocolVersion;
        this.capabilities = payload.value.capabilities;
        this.limits = payload.value.limits;
        // Accept the frames the agent says it may send (its max_frame_bytes can exceed ours).
        const agentMax = this.limits?.maxFrameBytes ?? 0;
        if (agentMax > this.reader.frames.maxFrameBytes) {
          this.reader.frames.maxFrameBytes = agentMax;
        }
        this.sendMaxFrameBytes = agentMax || this.opts.maxFrameBytes;
        this.readyOnThisConnection = true;
        // Whatever was sent before the sync may have been swallowed: send it again, same ids,
        // but only to the same agent. The AgentReady that follows every SyncResponse tells
        // (PROTOCOL.md §5): a restarted one fails them instead, as it would run them again.
        // What is sent from here on (a 'state' listener may send at once) reached this agent.
        this.syncedAt = performance.now();
        this.readyAfterSync = true;
        this.setState('ready');
        clearTimeout(this.resendTimer);
        this.resendTimer = setTimeout(() => this.resendPending(), RESEND_WAIT_MS);
        return;
      }
      case 'agentReady': {
        const before = this.agentStartedAt;
        const now = payload.value.info?.startedAt;
        this.info = payload.value.info;
        this.agentStartedAt = now;
        if (
          before !== undefined &&
          now !== undefined &&
          (before.seconds !== now.seconds || before.nanos !== now.nanos)
        ) {
          // Another agent process on the same connection: the guest rebooted or its agent was
          // restarted, and QEMU's socket stayed open. What the old one was running is gone;
          // waiting for its answers would last until each request's deadline. Requests written
          // since this sync went to the new one, and those not written yet are sent below.
          // The AgentReady that follows a sync may come after the resend wait (an agent that
          // answers the sync before it has loaded, early-responder.ts): what was written since
          // the sync, re-sends included, still reached this agent.
          const cutoff = this.readyAfterSync ? this.syncedAt : performance.now();
          this.pending.fail(this.restartedError(payload.value.reason || 'start'), cutoff);
        }
        this.readyAfterSync = false;
        if (this.resendTimer !== undefined) {
          this.resendPending();
        }
        this.emit('ready', payload.value.info);
        return;
      }
      case 'telemetry':
        this.emit('telemetry', payload.value);
        return;
      case 'execOutput':
        this.emit('exec-output', payload.value);
        return;
      default:
        break;
    }
    const entry = this.pending.take(message.messageId);
    if (!entry) {
      this.emit('message', message);
      return;
    }
    this.answeredAt = performance.now();
    if (payload.case === 'error') {
      entry.reject(new AgentRequestError(payload.value.code, payload.value.message));
      return;
    }
    if (entry.ack) {
      this.acks.queue(entry.id);
    }
    entry.resolve(message);
  }

  private onTimeout(entry: PendingRequest, timeoutMs: number): void {
    if (!this.pending.drop(entry)) {
      return;
    }
    entry.reject(new AgentTimeoutError(entry.operation, timeoutMs));
    // PROTOCOL.md §5: a timeout may mean the stream is out of step; resync. Not while the agent
    // answers requests since this one was written: it is reading the channel in order, and the
    // request waits behind others (a keepalive ping behind megabytes of writes). A resync then
    // would send every request still in flight again, behind the same queue.
    if (entry.sentAt !== undefined && this.answeredAt > entry.sentAt) {
      return;
    }
    if (this._state === 'ready') {
      this.handshake.reset();
      this.sendSync();
    }
  }

  /** Sends one ResultAck; false when there is no channel (the batcher keeps the ids). */
  private sendAcks(ids: string[]): boolean {
    if (!this.socket) {
      return false;
    }
    this.write(
      agentMessage(`ack-${this.sessionPrefix}-${++this.seq}`, {
        case: 'resultAck',
        value: create(ResultAckSchema, { messageIds: ids }),
      }),
    );
    return true;
  }

  private write(message: AgentMessage): void {
    this.writeFrame(encodeAgentMessage(message, this.opts.maxFrameBytes));
  }

  private writeFrame(parts: Uint8Array[]): void {
    const socket = this.socket;
    if (!socket || socket.destroyed) {
      return;
    }
    if (parts.length === 1) {
      socket.write(parts[0]!);
      return;
    }
    socket.cork();
    for (const part of parts) {
      socket.write(part);
    }
    socket.uncork();
  }

  private restartedError(how: string): AgentNotConnectedError {
    return new AgentNotConnectedError(
      `the agent at ${this.path} restarted (${how}) while requests were in flight; they may not have run`,
    );
  }

  private resendPending(): void {
    clearTimeout(this.resendTimer);
    this.resendTimer = undefined;
    if (this._state !== 'ready') {
      return;
    }
    for (const entry of this.pending.values()) {
      // Written since the sync: the synced agent has it. Writing it again would run it twice
      // (an operation whose result is not retained has no id to attach a repeat to).
      if (entry.sentAt !== undefined && entry.sentAt >= this.syncedAt) {
        continue;
      }
      this.writeFrame(entry.frame);
      // Written to the synced agent: an AgentReady that comes later no longer fails it.
      entry.sentAt = performance.now();
    }
  }

  private armKeepalive(): void {
    if (this.opts.keepaliveMs > 0 && this.keepaliveTimer === undefined) {
      this.keepaliveTimer = setTimeout(() => this.keepalive(), this.opts.keepaliveMs);
      this.keepaliveTimer.unref();
    }
  }

  // A restart behind an open channel shows only in the agent's uptime: ask for it while
  // requests wait long, and fail those sent before the agent that answers started.
  private keepalive(): void {
    this.keepaliveTimer = undefined;
    if (this.pending.size === 0 || this._state === 'closed') {
      return;
    }
    this.armKeepalive();
    const waiting = this.pending.waitingSince(performance.now(), this.opts.keepaliveMs);
    if (!waiting || this.keepaliveInFlight || this._state !== 'ready') {
      return;
    }
    this.keepaliveInFlight = true;
    this.request(
      { case: 'ping', value: create(PingRequestSchema) },
      { timeoutMs: this.opts.keepaliveMs },
    ).then(
      (reply) => {
        this.keepaliveInFlight = false;
        if (reply.payload.case !== 'pong') {
          return;
        }
        const agentStartedAt = performance.now() - reply.payload.value.uptimeSeconds * 1000;
        this.pending.fail(
          this.restartedError('younger than the request'),
          agentStartedAt - RESTART_SLACK_MS,
        );
      },
      () => {
        this.keepaliveInFlight = false;
      },
    );
  }

  private setState(state: AgentClientState): void {
    if (this._state === state) {
      return;
    }
    this._state = state;
    this.emit('state', state);
    if (state === 'ready' || state === 'closed' || state === 'disconnected') {
      for (const done of [...this.waitingForReady]) {
        if (state !== 'disconnected' || !this.opts.reconnect) {
          done();
        }
      }
    }
  }
}
