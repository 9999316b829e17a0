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
  GuestErrorCode,
  GuestRequestSchema,
  type GuestRequest,
  type GuestResponse,
  ErrorCode,
  subjects,
  type GuestOperation,
} from '@lq/proto';
import { ReplyAssembler, ReplyPartsError } from './reply-parts.js';

/** The part of a NATS connection a guest request needs (a NatsConnection fits). */
export type NatsRequester = Pick<NatsConnection, 'subscribe' | 'publish'>;

/** Bounds of a reply (PROTOCOL.md §9 Reply parts). */
export interface ReplyBounds {
  /** Largest reply reassembled from parts; a larger one fails before any of it is kept. */
  maxBytes?: number;
  /** Longest wait for the next part once a reply has begun to arrive. */
  partStallMs?: number;
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
 */
export function requestReply(
  nc: NatsRequester,
  subject: string,
  payload: Uint8Array,
  timeoutMs: number,
  bounds: ReplyBounds = {},
): Promise<GuestResponse> {
  const assembler = new ReplyAssembler(bounds.maxBytes ?? DEFAULT_REPLY_MAX_BYTES);
  const stallMs = bounds.partStallMs ?? DEFAULT_REPLY_PART_STALL_MS;
  return new Promise<GuestResponse>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (err: Error | null, response?: GuestResponse) => {
      clearTimeout(timer);
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
  bounds?: ReplyBounds,
): Promise<GuestResponse> {
  const created = create(GuestRequestSchema, request);
  const message = sign ? sign(created) : created;
  const timeout = (message.timeoutMs || 30_000) + slackMs;
  return requestReply(
    nc,
    subjects.guest(nodeId, op),
    toBinary(GuestRequestSchema, message),
    timeout,
    bounds,
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
  bounds?: ReplyBounds,
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
