import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ClosedConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
  createInbox,
  type Msg,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';
import {
  GUEST_OPERATION_TABLE,
  GuestErrorCode,
  GuestRequestSchema,
  type GuestRequest,
  type GuestResponse,
  ErrorCode,
  subjects,
  type GuestOperation,
} from '@lq/proto';
import { ReplyAssembler, ReplyPartsError } from './reply-parts.js';

/**
 * The part of a NATS connection a guest request needs (a NatsConnection fits); with `status`,
 * a request in flight learns that the server carrying it went away.
 */
export type NatsRequester = Pick<NatsConnection, 'subscribe' | 'publish'> &
  Partial<Pick<NatsConnection, 'status'>>;

/**
 * The NATS server carrying a request went away while it waited for its reply (the connection
 * moved to another server of the cluster): the request or its reply may be lost. Raised at once
 * for a request that is not safe to send again, instead of waiting for its whole timeout.
 */
export class ConnectionLostError extends Error {
  constructor(readonly server: string) {
    super(
      `the NATS server ${server || '(unknown)'} carrying the request went away while it was in flight; it may or may not have reached the guest`,
    );
    this.name = 'ConnectionLostError';
  }
}

type ConnectionEvent = { type: 'disconnect' | 'reconnect'; server: string };

/** One watch of a connection's status per connection, shared by its requests in flight. */
class ConnectionWatch {
  private readonly listeners = new Set<(e: ConnectionEvent) => void>();

  constructor(nc: NatsRequester) {
    const status = nc.status?.();
    if (!status) {
      return;
    }
    void (async () => {
      for await (const s of status) {
        if (s.type === 'disconnect' || s.type === 'reconnect') {
          const e = { type: s.type, server: s.server };
          for (const l of [...this.listeners]) {
            l(e);
          }
        }
      }
    })().catch(() => undefined);
  }

  on(listener: (e: ConnectionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const watches = new WeakMap<NatsRequester, ConnectionWatch>();

function watchOf(nc: NatsRequester): ConnectionWatch {
  let w = watches.get(nc);
  if (!w) {
    w = new ConnectionWatch(nc);
    watches.set(nc, w);
  }
  return w;
}

/** Bounds of a reply (PROTOCOL.md §9 Reply parts). */
export interface ReplyBounds {
  /** Largest reply reassembled from parts; a larger one fails before any of it is kept. */
  maxBytes?: number;
  /** Longest wait for the next part once a reply has begun to arrive. */
  partStallMs?: number;
}

/** A request's bounds, and how it learns that the node daemon's side of its path was lost. */
export interface GuestRequestOptions extends ReplyBounds {
  /**
   * Registers a listener called when the node daemon the request went to restarted or its own
   * NATS connection came back (PROTOCOL.md §9): the request or its reply may have been lost
   * with the server that died. Returns the function that unregisters it.
   */
  nodeLost?: (listener: () => void) => () => void;
}

export const DEFAULT_REPLY_MAX_BYTES = 40 * 1024 * 1024;
export const DEFAULT_REPLY_PART_STALL_MS = 10_000;

type Waiter = (err: Error | null, msg: Msg | null) => void;

/**
 * One wildcard subscription per connection for the replies of its guest requests, like the NATS
 * client's own request inbox, but one that takes several messages per request: a reply in parts.
 */
class ReplyInbox {
  readonly prefix = createInbox();
  private readonly waiters = new Map<string, Waiter>();
  private readonly sub: Subscription;
  private next = 0;

  constructor(nc: NatsRequester) {
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        const token = msg?.subject.slice(this.prefix.length + 1);
        const waiter = token === undefined ? undefined : this.waiters.get(token);
        if (err) {
          for (const w of this.waiters.values()) {
            w(err, null);
          }
          return;
        }
        waiter?.(null, msg);
      },
    });
    void this.sub.closed.then(() => {
      for (const w of this.waiters.values()) {
        w(new ClosedConnectionError(), null);
      }
    });
  }

  get closed(): boolean {
    return this.sub.isClosed();
  }

  open(waiter: Waiter): { subject: string; close: () => void } {
    const token = (this.next++).toString(36);
    this.waiters.set(token, waiter);
    return { subject: `${this.prefix}.${token}`, close: () => this.waiters.delete(token) };
  }
}

const inboxes = new WeakMap<NatsRequester, ReplyInbox>();

function inboxOf(nc: NatsRequester): ReplyInbox {
  let inbox = inboxes.get(nc);
  if (!inbox || inbox.closed) {
    inbox = new ReplyInbox(nc);
    inboxes.set(nc, inbox);
  }
  return inbox;
}

/**
 * Publishes `payload` to `subject` and resolves with the GuestResponse that comes back, whole or
 * reassembled from parts. Rejects as the NATS client does: a TimeoutError when nothing came in
 * `timeoutMs`, a RequestError caused by NoRespondersError when nobody serves the subject; a
 * ReplyPartsError for a reply over the bound, parts that do not fit together, or a next part
 * that did not come within the stall time.
 *
 * When the connection's server goes away before the reply came (the client moves to another
 * server of the cluster), the request or its reply may be lost: with `resend` (a payload the
 * request may be sent again with: read-only, or answered by request id) it is published again
 * once the connection is back, the first reply winning; without, it fails at once with
 * ConnectionLostError rather than at its timeout. The same may happen on the node daemon's side
 * (`bounds.nodeLost`): a request with `resend` is published again then; one without waits for
 * its reply or timeout, as it may have reached the daemon after its reconnection.
 */
export function requestReply(
  nc: NatsRequester,
  subject: string,
  payload: Uint8Array,
  timeoutMs: number,
  bounds: GuestRequestOptions = {},
  resend?: () => Uint8Array,
): Promise<GuestResponse> {
  const assembler = new ReplyAssembler(bounds.maxBytes ?? DEFAULT_REPLY_MAX_BYTES);
  const stallMs = bounds.partStallMs ?? DEFAULT_REPLY_PART_STALL_MS;
  return new Promise<GuestResponse>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let replying = false;
    const sendAgain = (again: () => Uint8Array) => {
      try {
        nc.publish(subject, again(), { reply: inbox.subject });
      } catch (err) {
        done(err as Error);
      }
    };
    const unwatch = watchOf(nc).on((e) => {
      if (replying) {
        return; // parts are arriving: the stall timer bounds the rest
      }
      if (!resend) {
        if (e.type === 'disconnect') {
          done(new ConnectionLostError(e.server));
        }
        return;
      }
      if (e.type === 'reconnect') {
        sendAgain(resend);
      }
    });
    const unwatchNode =
      resend && bounds.nodeLost
        ? bounds.nodeLost(() => {
            if (!replying) {
              sendAgain(resend);
            }
          })
        : undefined;
    const done = (err: Error | null, response?: GuestResponse) => {
      clearTimeout(timer);
      unwatch();
      unwatchNode?.();
      inbox.close();
      if (err) {
        reject(err);
      } else {
        resolve(response!);
      }
    };
    const inbox = inboxOf(nc).open((err, msg) => {
      if (err || !msg) {
        done(err ?? new ClosedConnectionError());
        return;
      }
      if (msg.data.length === 0 && msg.headers?.code === 503) {
        done(new RequestError('no responders', { cause: new NoRespondersError(subject) }));
        return;
      }
      let response: GuestResponse | undefined;
      try {
        response = assembler.add(msg.data);
      } catch (e) {
        done(e instanceof ReplyPartsError ? e : new ReplyPartsError((e as Error).message));
        return;
      }
      if (response) {
        done(null, response);
        return;
      }
      replying = true;
      const { received, count } = assembler.progress;
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          done(
            new ReplyPartsError(
              `reply incomplete: ${received} of ${count} parts, none more within ${stallMs} ms`,
            ),
          ),
        stallMs,
      );
    });
    timer = setTimeout(() => done(new TimeoutError()), timeoutMs);
    try {
      nc.publish(subject, payload, { reply: inbox.subject });
    } catch (e) {
      done(e as Error);
    }
  });
}

/**
 * Sends one guest operation to a node daemon and decodes its GuestResponse (reassembled when it
 * came in parts). The NATS timeout is the request's timeout_ms plus `slackMs`, so the daemon's
 * own AGENT_TIMEOUT answer arrives first; NATS errors (timeout, no responders) are thrown as the
 * client library raises them.
 */
export async function requestGuest(
  nc: NatsRequester,
  nodeId: string,
  op: GuestOperation,
  request: MessageInitShape<typeof GuestRequestSchema>,
  slackMs = 1000,
  /** Signs the request (the control plane's key; PROTOCOL.md §9 Signed requests). */
  sign?: (request: GuestRequest) => GuestRequest,
  bounds?: GuestRequestOptions,
): Promise<GuestResponse> {
  const created = create(GuestRequestSchema, request);
  // Signed again for each send: a node refuses a signature's nonce it has seen (replay).
  const encode = () => toBinary(GuestRequestSchema, sign ? sign(created) : created);
  const timeout = (created.timeoutMs || 30_000) + slackMs;
  const def = GUEST_OPERATION_TABLE[op];
  const resendable = def.readOnly || (def.retained && created.requestId !== '');
  return requestReply(
    nc,
    subjects.guest(nodeId, op),
    encode(),
    timeout,
    bounds,
    resendable ? encode : undefined,
  );
}

/** A node daemon answered with GuestError. */
export class GuestRequestError extends Error {
  constructor(
    readonly code: GuestErrorCode,
    message: string,
    readonly agentCode: ErrorCode,
  ) {
    super(message);
    this.name = 'GuestRequestError';
  }
  get codeName(): string {
    return GuestErrorCode[this.code] ?? String(this.code);
  }
}

type ResultCase = Exclude<NonNullable<GuestResponse['result']['case']>, 'error'>;
type ResultOf<C extends ResultCase> = Extract<GuestResponse['result'], { case: C }>['value'];

/** requestGuest, returning the expected result or throwing GuestRequestError. */
export async function callGuest<C extends ResultCase>(
  nc: NatsRequester,
  nodeId: string,
  op: GuestOperation,
  request: MessageInitShape<typeof GuestRequestSchema>,
  expect: C,
  slackMs?: number,
  sign?: (request: GuestRequest) => GuestRequest,
  bounds?: GuestRequestOptions,
): Promise<ResultOf<C>> {
  const response = await requestGuest(nc, nodeId, op, request, slackMs, sign, bounds);
  const result = response.result;
  if (result.case === 'error') {
    throw new GuestRequestError(result.value.code, result.value.message, result.value.agentCode);
  }
  if (result.case !== expect) {
    throw new GuestRequestError(
      GuestErrorCode.INTERNAL,
      `node ${nodeId} answered ${op} with ${result.case ?? 'nothing'}`,
      ErrorCode.UNSPECIFIED,
    );
  }
  return result.value as ResultOf<C>;
}
