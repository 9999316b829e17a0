import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  GuestErrorCode,
  GuestRequestSchema,
  GuestResponseSchema,
  type GuestRequest,
  type GuestResponse,
  ErrorCode,
  subjects,
  type GuestOperation,
} from '@lq/proto';

/** The part of a NATS connection a guest request needs (any NATS client fits). */
export interface NatsRequester {
  request(
    subject: string,
    payload: Uint8Array,
    opts: { timeout: number },
  ): Promise<{ data: Uint8Array }>;
}

/**
 * Sends one guest operation to a node daemon and decodes its GuestResponse. The NATS timeout is
 * the request's timeout_ms plus `slackMs`, so the daemon's own AGENT_TIMEOUT answer arrives
 * first; NATS errors (timeout, no responders) are thrown as the client library raises them.
 */
export async function requestGuest(
  nc: NatsRequester,
  nodeId: string,
  op: GuestOperation,
  request: MessageInitShape<typeof GuestRequestSchema>,
  slackMs = 1000,
  /** Signs the request (the control plane's key; PROTOCOL.md §9 Signed requests). */
  sign?: (request: GuestRequest) => GuestRequest,
): Promise<GuestResponse> {
  const created = create(GuestRequestSchema, request);
  const message = sign ? sign(created) : created;
  const timeout = (message.timeoutMs || 30_000) + slackMs;
  const reply = await nc.request(
    subjects.guest(nodeId, op),
    toBinary(GuestRequestSchema, message),
    { timeout },
  );
  return fromBinary(GuestResponseSchema, reply.data);
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
): Promise<ResultOf<C>> {
  const response = await requestGuest(nc, nodeId, op, request, slackMs, sign);
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
