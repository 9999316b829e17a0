import { create, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { timestampNow, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  AgentMessageSchema,
  ExecuteResponseSchema,
  FileReadResponseSchema,
  FileWriteRequestSchema,
  type AgentMessage,
} from '../gen/limiquantix/agent/v1/agent_pb.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  type FrameIssue,
  type ReceiveBufferSource,
  encodeFrameHeaderFor,
  writeFrameHeader,
} from './frame-codec.js';
import { crc32Range } from './crc32.js';
import { LentBuffers } from './lent-buffers.js';

export type AgentPayload = AgentMessage['payload'];
export type AgentPayloadCase = NonNullable<AgentPayload['case']>;
/** The message type carried under one payload case. */
export type PayloadOf<C extends AgentPayloadCase> = Extract<AgentPayload, { case: C }>['value'];

/** Builds an envelope with the current time. */
export function agentMessage(messageId: string, payload: AgentPayload): AgentMessage {
  return create(AgentMessageSchema, { messageId, timestamp: timestampNow(), payload });
}

// The envelope (message_id, timestamp, the payload oneof) is written here rather than by
// toBinary(AgentMessageSchema): protobuf-es's compiled writer calls one function per field of a
// message, and AgentMessage has one field per payload case (60 and growing), so encoding a 30-byte
// pong that way took ~8 µs under Bun, most of an agent's own work on a small request. Only the
// payload's message goes through toBinary. Fields are written in field-number order, as toBinary
// writes them, so the bytes are the same (message-codec.spec.ts checks every payload case).
const LEN = 2;

function fieldNumberOf(localName: string): number {
  const field = AgentMessageSchema.fields.find((f) => f.localName === localName);
  if (!field) {
    throw new Error(`AgentMessage has no field ${localName}`);
  }
  return field.number;
}

const MESSAGE_ID_FIELD = fieldNumberOf('messageId');
const TIMESTAMP_FIELD = fieldNumberOf('timestamp');
/** Each payload case: its field number and message type (every case is a message field). */
const PAYLOAD_FIELDS = new Map<string, { number: number; schema: DescMessage }>(
  AgentMessageSchema.fields.flatMap((f) =>
    f.oneof?.localName === 'payload' && f.fieldKind === 'message'
      ? [[f.localName, { number: f.number, schema: f.message }] as const]
      : [],
  ),
);
// The hand-written envelope relies on these; anything else falls back to toBinary.
const ENVELOPE_FAST =
  MESSAGE_ID_FIELD < TIMESTAMP_FIELD &&
  AgentMessageSchema.fields.every(
    (f) =>
      f.localName === 'messageId' ||
      f.localName === 'timestamp' ||
      (f.oneof?.localName === 'payload' &&
        f.number > TIMESTAMP_FIELD &&
        PAYLOAD_FIELDS.has(f.localName)),
  );

function varintLength(v: number): number {
  let n = 1;
  while (v > 0x7f) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, at: number, v: number): number {
  while (v > 0x7f) {
    buf[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/** Timestamp bytes for the common case (0 ≤ seconds < 2^53, 0 ≤ nanos); undefined otherwise. */
function timestampBytes(ts: Timestamp): Uint8Array | undefined {
  const seconds = ts.seconds;
  const nanos = ts.nanos;
  if (
    ts.$unknown !== undefined ||
    seconds < 0n ||
    seconds > BigInt(Number.MAX_SAFE_INTEGER) ||
    nanos < 0 ||
    !Number.isInteger(nanos)
  ) {
    return undefined;
  }
  const s = Number(seconds);
  const out = new Uint8Array(
    (s === 0 ? 0 : 1 + varintLength(s)) + (nanos === 0 ? 0 : 1 + varintLength(nanos)),
  );
  let at = 0;
  if (s !== 0) {
    out[at++] = 0x08; // field 1, varint
    at = writeVarint(out, at, s);
  }
  if (nanos !== 0) {
    out[at++] = 0x10; // field 2, varint
    writeVarint(out, at, nanos);
  }
  return out;
}

/**
 * The AgentMessage's bytes with its payload given as `inner` (the payload message's own bytes,
 * followed by `tailLength` more bytes the caller writes after: spliced bulk fields), written
 * from `offset` of a new buffer that ends with them. Undefined when the message has something
 * the hand-written envelope does not cover (then toBinary does it).
 */
function envelopeInto(
  message: AgentMessage,
  inner: Uint8Array,
  tailLength: number,
  offset: number,
): { buf: Buffer; end: number } | undefined {
  const payload = message.payload;
  const field = payload.case === undefined ? undefined : PAYLOAD_FIELDS.get(payload.case);
  if (!ENVELOPE_FAST || message.$unknown !== undefined || field === undefined) {
    return undefined;
  }
  const id = message.messageId;
  const idBytes = id.length === 0 ? 0 : Buffer.byteLength(id, 'utf8');
  const ts = message.timestamp === undefined ? undefined : timestampBytes(message.timestamp);
  if (message.timestamp !== undefined && ts === undefined) {
    return undefined;
  }
  const payloadLength = inner.length + tailLength;
  const length =
    (idBytes === 0 ? 0 : varintLength(MESSAGE_ID_FIELD << 3) + varintLength(idBytes) + idBytes) +
    (ts === undefined
      ? 0
      : varintLength(TIMESTAMP_FIELD << 3) + varintLength(ts.length) + ts.length) +
    varintLength(field.number << 3) +
    varintLength(payloadLength) +
    inner.length;
  const buf = Buffer.allocUnsafe(offset + length);
  let at = offset;
  if (idBytes !== 0) {
    at = writeVarint(buf, at, (MESSAGE_ID_FIELD << 3) | LEN);
    at = writeVarint(buf, at, idBytes);
    at += buf.write(id, at, 'utf8');
  }
  if (ts !== undefined) {
    at = writeVarint(buf, at, (TIMESTAMP_FIELD << 3) | LEN);
    at = writeVarint(buf, at, ts.length);
    buf.set(ts, at);
    at += ts.length;
  }
  at = writeVarint(buf, at, (field.number << 3) | LEN);
  at = writeVarint(buf, at, payloadLength);
  buf.set(inner, at);
  at += inner.length;
  return { buf, end: at };
}

// Replies that are the same object every time (a cached answer such as os.info's) keep their
// bytes here: encoding one then costs a lookup, not a pass of protobuf-es's reflective writer
// over every field (code that, run a few hundred times, is still being compiled).
const STABLE_PAYLOADS = new WeakMap<object, Uint8Array>();

/**
 * Declares `value` (the message carried under payload case `payloadCase`) immutable from now on
 * and encodes it once: every reply that carries this very object is written from those bytes.
 * The caller must never change the object afterwards (a changed answer is a new object).
 */
export function stablePayload<T extends object>(payloadCase: AgentPayloadCase, value: T): T {
  const field = PAYLOAD_FIELDS.get(payloadCase);
  if (field === undefined) {
    throw new Error(`AgentMessage has no payload case ${payloadCase}`);
  }
  if (field.schema.typeName !== (value as { $typeName?: string }).$typeName) {
    throw new Error(`${payloadCase} carries ${field.schema.typeName}, not this message`);
  }
  STABLE_PAYLOADS.set(value, toBinary(field.schema, value as never));
  return value;
}

/** The payload message's own bytes (the oneof value through its schema's toBinary). */
function payloadBinary(message: AgentMessage): Uint8Array | undefined {
  const payload = message.payload;
  const field = payload.case === undefined ? undefined : PAYLOAD_FIELDS.get(payload.case);
  if (field === undefined) {
    return undefined;
  }
  return (
    STABLE_PAYLOADS.get(payload.value as object) ?? toBinary(field.schema, payload.value as never)
  );
}

/**
 * The AgentMessage's bytes, as toBinary(AgentMessageSchema, message) gives them (see above).
 */
export function agentMessageBinary(message: AgentMessage): Uint8Array {
  const inner = payloadBinary(message);
  const out = inner === undefined ? undefined : envelopeInto(message, inner, 0, 0);
  return out === undefined ? toBinary(AgentMessageSchema, message) : out.buf;
}

// Bulk data (file chunks, captured output) is written without being copied into the protobuf
// writer: the message is encoded with its large bytes fields empty, and those fields follow as
// separate buffers with their own key and length. Field order does not matter to a protobuf
// parser, so the result decodes exactly like toBinary's. The frame CRC runs over the parts.
// From this size on, copying bulk bytes through protobuf-es's writer (a buffer grown by doubling,
// zero-filled at each step, then copied out) costs more than splicing: a 4 KiB chunk went through
// four copies, a 1 MiB one through a dozen.
const SPLICE_MIN_BYTES = 1024;
const EMPTY = new Uint8Array(0);

interface SpliceSpec {
  /** The AgentMessage oneof field carrying the message. */
  fieldNumber: number;
  schema: DescMessage;
  bytesFields: Array<{ localName: string; number: number }>;
}

function spliceSpec(caseName: AgentPayloadCase, schema: DescMessage, names: string[]): SpliceSpec {
  const outer = AgentMessageSchema.fields.find((f) => f.localName === caseName);
  if (!outer) {
    throw new Error(`AgentMessage has no field ${caseName}`);
  }
  return {
    fieldNumber: outer.number,
    schema,
    bytesFields: names.map((localName) => {
      const field = schema.fields.find((f) => f.localName === localName);
      if (!field) {
        throw new Error(`${schema.typeName} has no field ${localName}`);
      }
      return { localName, number: field.number };
    }),
  };
}

const SPLICED: Partial<Record<AgentPayloadCase, SpliceSpec>> = {
  fileReadResponse: spliceSpec('fileReadResponse', FileReadResponseSchema, ['data']),
  fileHandleReadResponse: spliceSpec('fileHandleReadResponse', FileReadResponseSchema, ['data']),
  fileWrite: spliceSpec('fileWrite', FileWriteRequestSchema, ['data']),
  executeResponse: spliceSpec('executeResponse', ExecuteResponseSchema, ['stdout', 'stderr']),
};

/** A length-delimited field's key and length prefix. */
function keyAndLength(fieldNumber: number, length: number): Buffer {
  const out: number[] = [];
  for (let v = (fieldNumber << 3) | 2; ;) {
    out.push(v > 0x7f ? (v & 0x7f) | 0x80 : v);
    v = Math.floor(v / 128);
    if (v === 0) {
      break;
    }
  }
  for (let v = length; ;) {
    out.push(v > 0x7f ? (v & 0x7f) | 0x80 : v);
    v = Math.floor(v / 128);
    if (v === 0) {
      break;
    }
  }
  return Buffer.from(out);
}

function splicedPayload(message: AgentMessage): Uint8Array[] | undefined {
  const payload = message.payload;
  const spec = payload.case === undefined ? undefined : SPLICED[payload.case];
  if (!spec) {
    return undefined;
  }
  const value = payload.value as unknown as Record<string, Uint8Array>;
  const bulk = spec.bytesFields.map((f) => value[f.localName] ?? EMPTY);
  if (bulk.reduce((n, b) => n + b.length, 0) < SPLICE_MIN_BYTES) {
    return undefined;
  }
  let inner: Uint8Array;
  try {
    spec.bytesFields.forEach((f) => (value[f.localName] = EMPTY));
    inner = toBinary(spec.schema, value as never);
  } finally {
    spec.bytesFields.forEach((f, i) => (value[f.localName] = bulk[i]!));
  }
  const tail: Uint8Array[] = [];
  let innerLength = inner.length;
  spec.bytesFields.forEach((f, i) => {
    const data = bulk[i]!;
    if (data.length > 0) {
      const prefix = keyAndLength(f.number, data.length);
      tail.push(prefix, data);
      innerLength += prefix.length + data.length;
    }
  });
  const head = envelopeInto(message, inner, innerLength - inner.length, 0);
  if (head !== undefined) {
    return [head.buf, ...tail];
  }
  const envelope = toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, { messageId: message.messageId, timestamp: message.timestamp }),
  );
  return [envelope, keyAndLength(spec.fieldNumber, innerLength), inner, ...tail];
}

// Below this a frame goes out as one buffer: one write is cheaper than a gathered one.
const JOIN_BELOW_BYTES = 64 * 1024;
/** The largest frame a FrameBufferSource is asked for (a small frame with bulk bytes). */
export const JOINED_FRAME_MAX_BYTES = FRAME_HEADER_BYTES + JOIN_BELOW_BYTES;

/**
 * Lends the buffer a small frame carrying bulk bytes (a 4 KiB file chunk) is joined in, instead
 * of a new one per frame: `bytes` long (at most JOINED_FRAME_MAX_BYTES), and the lender's until
 * the frame has been written.
 */
export type FrameBufferSource = (bytes: number) => Buffer;

/**
 * Encodes a message as the buffers of one frame, to be written back to back (writev). Small
 * frames come as a single buffer; large bytes fields are never copied. A small frame with bulk
 * bytes is joined in a buffer from `frameBuffer` when given.
 */
export function encodeAgentMessage(
  message: AgentMessage,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
  frameBuffer?: FrameBufferSource,
): Uint8Array[] {
  let parts = splicedPayload(message);
  if (parts === undefined) {
    // The message is written after room for the header, which a small frame gets in place.
    const inner = payloadBinary(message);
    const out =
      inner === undefined ? undefined : envelopeInto(message, inner, 0, FRAME_HEADER_BYTES);
    if (out === undefined) {
      parts = [toBinary(AgentMessageSchema, message)];
    } else {
      const length = out.end - FRAME_HEADER_BYTES;
      if (length < JOIN_BELOW_BYTES) {
        const crc = crc32Range(out.buf, FRAME_HEADER_BYTES, out.end);
        writeFrameHeader(out.buf, length, crc, maxFrameBytes);
        return [out.buf];
      }
      parts = [out.buf.subarray(FRAME_HEADER_BYTES, out.end)];
    }
  }
  let length = 0;
  for (const part of parts) {
    length += part.length;
  }
  if (length < JOIN_BELOW_BYTES) {
    // A small spliced frame: its parts copied once, behind a header written in place.
    const bytes = FRAME_HEADER_BYTES + length;
    const frame = frameBuffer ? frameBuffer(bytes) : Buffer.allocUnsafe(bytes);
    let at = FRAME_HEADER_BYTES;
    for (const part of parts) {
      frame.set(part, at);
      at += part.length;
    }
    writeFrameHeader(frame, length, crc32Range(frame, FRAME_HEADER_BYTES, at), maxFrameBytes);
    return [frame];
  }
  return [encodeFrameHeaderFor(parts, maxFrameBytes), ...parts];
}

/** One buffer; for tests and small messages. */
export function encodeAgentMessageFrame(
  message: AgentMessage,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): Buffer {
  return Buffer.concat(encodeAgentMessage(message, maxFrameBytes));
}

export interface MessageDecoderOptions {
  maxFrameBytes?: number;
  onIssue?: (issue: FrameIssue) => void;
  /** Lends buffers for big frames (FrameDecoderOptions.receiveBuffers). */
  receiveBuffers?: ReceiveBufferSource;
}

/** Frames in, AgentMessages out; an undecodable payload is reported and skipped. */
export class AgentMessageDecoder {
  readonly frames: FrameDecoder;
  private readonly onIssue: (issue: FrameIssue) => void;
  private readonly lent = new LentBuffers<AgentMessage>();

  constructor(options: MessageDecoderOptions = {}) {
    this.onIssue = options.onIssue ?? (() => undefined);
    this.frames = new FrameDecoder({
      maxFrameBytes: options.maxFrameBytes,
      onIssue: this.onIssue,
      receiveBuffers: options.receiveBuffers,
    });
  }

  /**
   * The release of the lent buffer a message's bytes fields are views of, if they are (once).
   * Call it when the message is done with; a release never called only costs the pool a buffer.
   */
  takeReceiveBuffer(message: AgentMessage): (() => void) | undefined {
    return this.lent.take(message);
  }

  push(chunk: Uint8Array): AgentMessage[] {
    return this.decodeAll(this.frames.push(chunk));
  }

  abandonPartial(): AgentMessage[] {
    return this.decodeAll(this.frames.abandonPartial());
  }

  reset(): void {
    this.frames.reset();
  }

  private decodeAll(payloads: Buffer[]): AgentMessage[] {
    const out: AgentMessage[] = [];
    for (const payload of payloads) {
      const release = this.frames.takeReceiveBuffer(payload);
      try {
        const message = fromBinary(AgentMessageSchema, payload);
        if (release !== undefined) {
          this.lent.set(message, release);
        }
        out.push(message);
      } catch (err) {
        release?.();
        this.onIssue({
          kind: 'bad-message',
          bytes: payload.length,
          detail: `frame payload is not an AgentMessage: ${(err as Error).message}`,
        });
      }
    }
    return out;
  }
}

export interface AgentStreamReaderOptions extends MessageDecoderOptions {
  /** Give up on a half-received frame after this long without a byte (PROTOCOL.md §3). */
  partialFrameTimeoutMs: number;
  onMessage(message: AgentMessage): void;
}

/**
 * Both ends' reader of one channel: decodes pushed bytes and, when a frame stays half-received
 * for partialFrameTimeoutMs, abandons it and rescans its bytes, so that a writer that vanished
 * mid-frame cannot swallow the next writer's frames (a sync included) for good.
 */
export class AgentStreamReader {
  private readonly decoder: AgentMessageDecoder;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AgentStreamReaderOptions) {
    this.decoder = new AgentMessageDecoder(options);
  }

  get frames(): FrameDecoder {
    return this.decoder.frames;
  }

  /** See AgentMessageDecoder.takeReceiveBuffer. */
  takeReceiveBuffer(message: AgentMessage): (() => void) | undefined {
    return this.decoder.takeReceiveBuffer(message);
  }

  push(chunk: Uint8Array): void {
    for (const message of this.decoder.push(chunk)) {
      this.options.onMessage(message);
    }
    this.arm();
  }

  reset(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.decoder.reset();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (!this.decoder.frames.hasPartialFrame) {
      // The common case (whole frames): no timer to touch at all.
      if (this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      return;
    }
    if (this.timer !== undefined) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      for (const message of this.decoder.abandonPartial()) {
        this.options.onMessage(message);
      }
      this.arm();
    }, this.options.partialFrameTimeoutMs);
    this.timer.unref();
  }
}
