import { create, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { TimestampSchema, timestampNow, type Timestamp } from '@bufbuild/protobuf/wkt';
import {
  AgentMessageSchema,
  ExecuteResponseSchema,
  FileHandleReadRequestSchema,
  FileReadResponseSchema,
  FileWriteRequestSchema,
  PongResponseSchema,
  type AgentMessage,
  type FileHandleReadRequest,
  type FileReadResponse,
  type PongResponse,
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

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Bytes of a Timestamp in the common case (0 ≤ seconds < 2^53, 0 ≤ nanos); -1 otherwise. */
function timestampLength(ts: Timestamp): number {
  const seconds = ts.seconds;
  const nanos = ts.nanos;
  if (
    ts.$unknown !== undefined ||
    seconds < 0n ||
    seconds > MAX_SAFE ||
    nanos < 0 ||
    !Number.isInteger(nanos)
  ) {
    return -1;
  }
  const s = Number(seconds);
  return (s === 0 ? 0 : 1 + varintLength(s)) + (nanos === 0 ? 0 : 1 + varintLength(nanos));
}

function writeTimestamp(buf: Uint8Array, at: number, ts: Timestamp): number {
  const s = Number(ts.seconds);
  if (s !== 0) {
    buf[at++] = 0x08; // field 1, varint
    at = writeVarint(buf, at, s);
  }
  if (ts.nanos !== 0) {
    buf[at++] = 0x10; // field 2, varint
    at = writeVarint(buf, at, ts.nanos);
  }
  return at;
}

function idLength(id: string): number {
  return id.length === 0 ? 0 : Buffer.byteLength(id, 'utf8');
}

/**
 * The bytes the hand-written envelope puts ahead of a payload of `payloadLength` bytes under
 * payload field `fieldNumber`; -1 when the message has something it does not cover (then
 * toBinary does it).
 */
function envelopeLength(message: AgentMessage, fieldNumber: number, payloadLength: number): number {
  if (!ENVELOPE_FAST || message.$unknown !== undefined) {
    return -1;
  }
  const idBytes = idLength(message.messageId);
  const ts = message.timestamp;
  const tsBytes = ts === undefined ? 0 : timestampLength(ts);
  if (tsBytes < 0) {
    return -1;
  }
  return (
    (idBytes === 0 ? 0 : varintLength(MESSAGE_ID_FIELD << 3) + varintLength(idBytes) + idBytes) +
    (ts === undefined ? 0 : varintLength(TIMESTAMP_FIELD << 3) + varintLength(tsBytes) + tsBytes) +
    varintLength(fieldNumber << 3) +
    varintLength(payloadLength)
  );
}

/** Writes the envelope envelopeLength measured from `at` (it covers the message); returns the end. */
function writeEnvelope(
  buf: Buffer,
  at: number,
  message: AgentMessage,
  fieldNumber: number,
  payloadLength: number,
): number {
  const idBytes = idLength(message.messageId);
  if (idBytes !== 0) {
    at = writeVarint(buf, at, (MESSAGE_ID_FIELD << 3) | LEN);
    at = writeVarint(buf, at, idBytes);
    at += buf.write(message.messageId, at, 'utf8');
  }
  const ts = message.timestamp;
  if (ts !== undefined) {
    at = writeVarint(buf, at, (TIMESTAMP_FIELD << 3) | LEN);
    at = writeVarint(buf, at, timestampLength(ts));
    at = writeTimestamp(buf, at, ts);
  }
  at = writeVarint(buf, at, (fieldNumber << 3) | LEN);
  return writeVarint(buf, at, payloadLength);
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

/**
 * The AgentMessage's bytes, as toBinary(AgentMessageSchema, message) gives them (see above).
 */
export function agentMessageBinary(message: AgentMessage): Uint8Array {
  const out = envelopedPayload(message, 0);
  return out === undefined ? toBinary(AgentMessageSchema, message) : out.buf;
}

/**
 * The AgentMessage's bytes from `offset` of a new buffer (the payload message through its
 * schema's toBinary, the envelope hand-written); undefined when the hand-written envelope does
 * not cover the message.
 */
function envelopedPayload(
  message: AgentMessage,
  offset: number,
): { buf: Buffer; end: number } | undefined {
  const payload = message.payload;
  const field = payload.case === undefined ? undefined : PAYLOAD_FIELDS.get(payload.case);
  if (field === undefined || !ENVELOPE_FAST || message.$unknown !== undefined) {
    return undefined;
  }
  const writer = PAYLOAD_WRITERS.get(payload.case!);
  const direct = writer === undefined ? -1 : writer.length(payload.value as never);
  const inner =
    direct >= 0
      ? undefined
      : (STABLE_PAYLOADS.get(payload.value as object) ??
        toBinary(field.schema, payload.value as never));
  const innerLength = inner === undefined ? direct : inner.length;
  const head = envelopeLength(message, field.number, innerLength);
  if (head < 0) {
    return undefined;
  }
  const buf = Buffer.allocUnsafe(offset + head + innerLength);
  const at = writeEnvelope(buf, offset, message, field.number, innerLength);
  if (inner === undefined) {
    writer!.write(payload.value as never, buf, at);
  } else {
    buf.set(inner, at);
  }
  return { buf, end: at + innerLength };
}

/**
 * A file read request, written by hand as the reply is (the host sends one per chunk); with
 * limits, or a value over 2^53, toBinary writes it.
 */
const fileHandleReadWriter: RestWriter<FileHandleReadRequest> = {
  length(v) {
    const handle = safeUint(v.handle);
    const offset = v.offset === undefined ? 0 : safeUint(v.offset);
    if (
      v.$unknown !== undefined ||
      v.limits !== undefined ||
      handle < 0 ||
      offset < 0 ||
      !isUint32(v.length)
    ) {
      return -1;
    }
    return (
      (handle === 0 ? 0 : 1 + varintLength(handle)) +
      (v.length === 0 ? 0 : 1 + varintLength(v.length)) +
      (v.offset === undefined ? 0 : 1 + varintLength(offset))
    );
  },
  write(v, buf, at) {
    if (v.handle !== 0n) {
      buf[at++] = 0x08; // field 1, varint
      at = writeVarint(buf, at, Number(v.handle));
    }
    if (v.length !== 0) {
      buf[at++] = 0x10; // field 2
      at = writeVarint(buf, at, v.length);
    }
    if (v.offset !== undefined) {
      buf[at++] = 0x18; // field 3 (optional: written when set, 0 included)
      at = writeVarint(buf, at, Number(v.offset));
    }
    return at;
  },
};

/** A payload message without fields (PingRequest, GetOsInfoRequest, …): nothing to write. */
const emptyWriter: RestWriter<{ $unknown?: unknown }> = {
  length: (v) => (v.$unknown === undefined ? 0 : -1),
  write: (_v, _buf, at) => at,
};

// A double's bytes, little-endian as protobuf writes them (every target is little-endian; on
// another, the hand-written pong is left to protobuf-es).
const F64 = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The ping's answer (agent_version, uptime_seconds); a non-ASCII version or NaN to toBinary. */
const pongWriter: RestWriter<PongResponse> = {
  length(v) {
    const version = v.agentVersion;
    const uptime = v.uptimeSeconds;
    if (v.$unknown !== undefined || !LITTLE_ENDIAN || Number.isNaN(uptime)) {
      return -1;
    }
    for (let i = 0; i < version.length; i++) {
      if (version.charCodeAt(i) >= 0x80) {
        return -1;
      }
    }
    return (
      (version.length === 0 ? 0 : 1 + varintLength(version.length) + version.length) +
      (Object.is(uptime, 0) ? 0 : 9) // toBinary writes -0 (Object.is, as protobuf-es does)
    );
  },
  write(v, buf, at) {
    const version = v.agentVersion;
    if (version.length !== 0) {
      buf[at++] = 0x0a; // field 1, length-delimited
      at = writeVarint(buf, at, version.length);
      for (let i = 0; i < version.length; i++) {
        buf[at++] = version.charCodeAt(i);
      }
    }
    if (!Object.is(v.uptimeSeconds, 0)) {
      buf[at++] = 0x11; // field 2, 64-bit
      F64[0] = v.uptimeSeconds;
      for (let i = 0; i < 8; i++) {
        buf[at++] = F64_BYTES[i]!;
      }
    }
    return at;
  },
};

const PAYLOAD_WRITERS: ReadonlyMap<string, RestWriter<never>> = new Map([
  ['fileHandleRead', fileHandleReadWriter],
  ['pong', pongWriter],
  ...[...PAYLOAD_FIELDS]
    .filter(([, f]) => f.schema.fields.length === 0)
    .map(([localName]) => [localName, emptyWriter] as const),
]);

// Bulk data (file chunks, captured output) is written without being copied into the protobuf
// writer: the message's other fields are encoded, and its large bytes fields follow with their
// own key and length. Field order does not matter to a protobuf parser, so the result decodes
// exactly like toBinary's. The frame CRC runs over the parts.
// From this size on, copying bulk bytes through protobuf-es's writer (a buffer grown by doubling,
// zero-filled at each step, then copied out) costs more than splicing: a 4 KiB chunk went through
// four copies, a 1 MiB one through a dozen.
const SPLICE_MIN_BYTES = 1024;
const EMPTY = new Uint8Array(0);

/** A payload message's fields other than its bulk ones, written by hand (no writer, no copy). */
interface RestWriter<T> {
  /** Their bytes, as toBinary writes them; -1 when a value is outside what this covers. */
  length(value: T): number;
  /** Writes them from `at` (after length() said it covers them); returns the end. */
  write(value: T, buf: Uint8Array, at: number): number;
}

interface SpliceSpec {
  /** The AgentMessage oneof field carrying the message. */
  fieldNumber: number;
  schema: DescMessage;
  /** The bulk fields, in field order: name, key (field number and wire type) and its length. */
  bytesFields: Array<{ localName: string; key: number; keyLength: number }>;
  /** Without one, the other fields go through toBinary. */
  rest?: RestWriter<never>;
}

function spliceSpec<T>(
  caseName: AgentPayloadCase,
  schema: DescMessage,
  names: string[],
  rest?: RestWriter<T>,
): SpliceSpec {
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
      const key = (field.number << 3) | LEN;
      return { localName, key, keyLength: varintLength(key) };
    }),
    rest: rest,
  };
}

/** A number a uint32 field can carry as it is. */
function isUint32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** A uint64 or non-negative int64 that fits a double; -1 otherwise. */
function safeUint(v: bigint): number {
  return v < 0n || v > MAX_SAFE ? -1 : Number(v);
}

/**
 * FileReadResponse's fields after `data` (eof, total_size, mode, offset, mtime_ms), the reply to
 * every file read: written here, a 4 KiB read's reply takes no protobuf-es writer. The codec test
 * checks the bytes against toBinary.
 */
const fileReadResponseRest: RestWriter<FileReadResponse> = {
  length(v) {
    const total = safeUint(v.totalSize);
    const offset = safeUint(v.offset);
    const mtime = safeUint(v.mtimeMs);
    if (v.$unknown !== undefined || total < 0 || offset < 0 || mtime < 0 || !isUint32(v.mode)) {
      return -1;
    }
    return (
      (v.eof ? 2 : 0) +
      (total === 0 ? 0 : 1 + varintLength(total)) +
      (v.mode === 0 ? 0 : 1 + varintLength(v.mode)) +
      (offset === 0 ? 0 : 1 + varintLength(offset)) +
      (mtime === 0 ? 0 : 1 + varintLength(mtime))
    );
  },
  write(v, buf, at) {
    if (v.eof) {
      buf[at++] = 0x10; // field 2, varint
      buf[at++] = 1;
    }
    if (v.totalSize !== 0n) {
      buf[at++] = 0x18; // field 3
      at = writeVarint(buf, at, Number(v.totalSize));
    }
    if (v.mode !== 0) {
      buf[at++] = 0x20; // field 4
      at = writeVarint(buf, at, v.mode);
    }
    if (v.offset !== 0n) {
      buf[at++] = 0x28; // field 5
      at = writeVarint(buf, at, Number(v.offset));
    }
    if (v.mtimeMs !== 0n) {
      buf[at++] = 0x30; // field 6
      at = writeVarint(buf, at, Number(v.mtimeMs));
    }
    return at;
  },
};

const SPLICED: Partial<Record<AgentPayloadCase, SpliceSpec>> = {
  fileReadResponse: spliceSpec(
    'fileReadResponse',
    FileReadResponseSchema,
    ['data'],
    fileReadResponseRest,
  ),
  fileHandleReadResponse: spliceSpec(
    'fileHandleReadResponse',
    FileReadResponseSchema,
    ['data'],
    fileReadResponseRest,
  ),
  fileWrite: spliceSpec('fileWrite', FileWriteRequestSchema, ['data']),
  executeResponse: spliceSpec('executeResponse', ExecuteResponseSchema, ['stdout', 'stderr']),
};

/** The payload's fields other than the bulk ones, through toBinary (bulk fields emptied meanwhile). */
function restBinary(spec: SpliceSpec, value: Record<string, Uint8Array>): Uint8Array {
  const fields = spec.bytesFields;
  const bulk = fields.map((f) => value[f.localName] ?? EMPTY);
  try {
    for (const f of fields) {
      value[f.localName] = EMPTY;
    }
    return toBinary(spec.schema, value as never);
  } finally {
    fields.forEach((f, i) => (value[f.localName] = bulk[i]!));
  }
}

/** Writes a bulk field's key and length from `at`; returns the end. */
function writeBulkPrefix(buf: Uint8Array, at: number, key: number, length: number): number {
  return writeVarint(buf, writeVarint(buf, at, key), length);
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
 * A message with bulk bytes of SPLICE_MIN_BYTES or more, as the buffers of one frame; undefined
 * for any other (or one the hand-written envelope does not cover). A small frame is written
 * straight into one buffer (from `frameBuffer` when given): header, envelope, the payload's other
 * fields, then each bulk field's key, length and bytes, which are copied once. A larger one keeps
 * its bulk bytes as parts of their own.
 */
function encodeSpliced(
  message: AgentMessage,
  spec: SpliceSpec,
  maxFrameBytes: number,
  frameBuffer: FrameBufferSource | undefined,
): Uint8Array[] | undefined {
  const value = message.payload.value as unknown as Record<string, Uint8Array>;
  const fields = spec.bytesFields;
  let bulkBytes = 0;
  let tailLength = 0;
  for (const f of fields) {
    const n = (value[f.localName] ?? EMPTY).length;
    bulkBytes += n;
    tailLength += n === 0 ? 0 : f.keyLength + varintLength(n) + n;
  }
  if (bulkBytes < SPLICE_MIN_BYTES) {
    return undefined;
  }
  let restLength = spec.rest === undefined ? -1 : spec.rest.length(value as never);
  const rest = restLength < 0 ? restBinary(spec, value) : undefined;
  if (rest !== undefined) {
    restLength = rest.length;
  }
  const payloadLength = restLength + tailLength;
  const head = envelopeLength(message, spec.fieldNumber, payloadLength);
  if (head < 0) {
    return undefined;
  }
  const length = head + payloadLength;
  if (length < JOIN_BELOW_BYTES) {
    const bytes = FRAME_HEADER_BYTES + length;
    const frame = frameBuffer ? frameBuffer(bytes) : Buffer.allocUnsafe(bytes);
    let at = writeEnvelope(frame, FRAME_HEADER_BYTES, message, spec.fieldNumber, payloadLength);
    if (rest === undefined) {
      at = spec.rest!.write(value as never, frame, at);
    } else {
      frame.set(rest, at);
      at += rest.length;
    }
    for (const f of fields) {
      const data = value[f.localName] ?? EMPTY;
      if (data.length > 0) {
        at = writeBulkPrefix(frame, at, f.key, data.length);
        frame.set(data, at);
        at += data.length;
      }
    }
    writeFrameHeader(frame, length, crc32Range(frame, FRAME_HEADER_BYTES, at), maxFrameBytes);
    return [frame];
  }
  // Envelope and other fields, then each bulk field's key and length and its bytes, uncopied.
  const first = Buffer.allocUnsafe(head + restLength);
  const at = writeEnvelope(first, 0, message, spec.fieldNumber, payloadLength);
  if (rest === undefined) {
    spec.rest!.write(value as never, first, at);
  } else {
    first.set(rest, at);
  }
  const parts: Uint8Array[] = [first];
  for (const f of fields) {
    const data = value[f.localName] ?? EMPTY;
    if (data.length > 0) {
      const prefix = Buffer.allocUnsafe(f.keyLength + varintLength(data.length));
      writeBulkPrefix(prefix, 0, f.key, data.length);
      parts.push(prefix, data);
    }
  }
  return [encodeFrameHeaderFor(parts, maxFrameBytes), ...parts];
}

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
  const spec = message.payload.case === undefined ? undefined : SPLICED[message.payload.case];
  const spliced =
    spec === undefined ? undefined : encodeSpliced(message, spec, maxFrameBytes, frameBuffer);
  if (spliced !== undefined) {
    return spliced;
  }
  // The message is written after room for the header, which a small frame gets in place.
  const out = envelopedPayload(message, FRAME_HEADER_BYTES);
  if (out === undefined) {
    const whole = toBinary(AgentMessageSchema, message);
    if (whole.length >= JOIN_BELOW_BYTES) {
      return [encodeFrameHeaderFor([whole], maxFrameBytes), whole];
    }
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + whole.length);
    frame.set(whole, FRAME_HEADER_BYTES);
    writeFrameHeader(
      frame,
      whole.length,
      crc32Range(frame, FRAME_HEADER_BYTES, frame.length),
      maxFrameBytes,
    );
    return [frame];
  }
  const length = out.end - FRAME_HEADER_BYTES;
  if (length < JOIN_BELOW_BYTES) {
    writeFrameHeader(
      out.buf,
      length,
      crc32Range(out.buf, FRAME_HEADER_BYTES, out.end),
      maxFrameBytes,
    );
    return [out.buf];
  }
  const payload = out.buf.subarray(FRAME_HEADER_BYTES, out.end);
  return [encodeFrameHeaderFor([payload], maxFrameBytes), payload];
}

/** One buffer; for tests and small messages. */
export function encodeAgentMessageFrame(
  message: AgentMessage,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): Buffer {
  return Buffer.concat(encodeAgentMessage(message, maxFrameBytes));
}

// The envelope is read here too, for the same reason as it is written by hand: fromBinary reads
// every field through protobuf-es's reflection, allocating as it goes (a 4 KiB read's reply took
// some thirty objects to decode, a dozen of them for the envelope and its timestamp). Only the
// payload's message goes through fromBinary. Anything the reader below does not cover (a field
// it does not know, one repeated, a non-ASCII id, a timestamp outside 0..2^53 s) is left to
// fromBinary whole, so the result is always fromBinary's (message-codec.spec.ts compares them).
interface PayloadField {
  localName: string;
  schema: DescMessage;
  read: PayloadReader | undefined;
}

const MESSAGE_ID_KEY = (MESSAGE_ID_FIELD << 3) | LEN;
const TIMESTAMP_KEY = (TIMESTAMP_FIELD << 3) | LEN;

/** Reads varints and lengths off a message's bytes; -1 for anything malformed or over 2^53. */
class WireCursor {
  constructor(
    readonly buf: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}

  varint(): number {
    const buf = this.buf;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (this.at >= this.end) {
        return -1;
      }
      const b = buf[this.at++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        return value <= Number.MAX_SAFE_INTEGER ? value : -1;
      }
      scale *= 128;
    }
    return -1; // 2^56 and more, or a negative int64
  }

  /** The end of a length-delimited field's bytes, which start at `at`; -1 if they overrun. */
  lengthDelimited(): number {
    const length = this.varint();
    const end = this.at + length;
    return length < 0 || end > this.end ? -1 : end;
  }
}

/** The bytes [start, end) as a string when they are all ASCII (then UTF-8 reads the same). */
function asciiAt(buf: Uint8Array, start: number, end: number): string | undefined {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) {
      return undefined;
    }
  }
  return Buffer.isBuffer(buf)
    ? buf.toString('latin1', start, end)
    : String.fromCharCode(...buf.subarray(start, end));
}

/** The timestamp in bytes [start, end), or undefined when the reader does not cover it. */
function timestampAt(buf: Uint8Array, start: number, end: number): Timestamp | undefined {
  const c = new WireCursor(buf, start, end);
  let seconds = 0;
  let nanos = 0;
  while (c.at < end) {
    const key = c.varint();
    const v = key === 0x08 || key === 0x10 ? c.varint() : -1;
    if (v < 0 || (key === 0x10 && v > 0x7fffffff)) {
      return undefined;
    }
    if (key === 0x08) {
      seconds = v;
    } else {
      nanos = v;
    }
  }
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos });
}

/**
 * Hand readers for the payloads of the hottest exchanges, a file read (request and reply) and a
 * ping (an empty request, its pong): each returns undefined for anything it does not cover
 * (fromBinary reads those).
 */
type PayloadReader = (bytes: Uint8Array, start: number, end: number) => object | undefined;

function readFileHandleRead(bytes: Uint8Array, start: number, end: number): object | undefined {
  const c = new WireCursor(bytes, start, end);
  const m = create(FileHandleReadRequestSchema);
  while (c.at < end) {
    const key = c.varint();
    const v = key === 0x08 || key === 0x10 || key === 0x18 ? c.varint() : -1;
    if (v < 0 || (key === 0x10 && v > 0xffffffff)) {
      return undefined; // limits, an unknown field, or a value over 2^53
    }
    if (key === 0x08) {
      m.handle = BigInt(v);
    } else if (key === 0x10) {
      m.length = v;
    } else {
      m.offset = BigInt(v);
    }
  }
  return m;
}

function readFileReadResponse(bytes: Uint8Array, start: number, end: number): object | undefined {
  const c = new WireCursor(bytes, start, end);
  const m = create(FileReadResponseSchema);
  while (c.at < end) {
    const key = c.varint();
    if (key === 0x0a) {
      const dataEnd = c.lengthDelimited();
      if (dataEnd < 0) {
        return undefined;
      }
      m.data = bytes.subarray(c.at, dataEnd);
      c.at = dataEnd;
      continue;
    }
    const v = key >= 0x10 && key <= 0x30 && (key & 7) === 0 ? c.varint() : -1;
    if (v < 0 || (key === 0x20 && v > 0xffffffff)) {
      return undefined; // an unknown field, or a value over 2^53 (a negative mtime included)
    }
    switch (key) {
      case 0x10:
        m.eof = v !== 0;
        break;
      case 0x18:
        m.totalSize = BigInt(v);
        break;
      case 0x20:
        m.mode = v;
        break;
      case 0x28:
        m.offset = BigInt(v);
        break;
      default:
        m.mtimeMs = BigInt(v);
    }
  }
  return m;
}

function readPong(bytes: Uint8Array, start: number, end: number): object | undefined {
  const c = new WireCursor(bytes, start, end);
  const m = create(PongResponseSchema);
  while (c.at < end) {
    const key = c.varint();
    if (key === 0x0a) {
      const versionEnd = c.lengthDelimited();
      const version = versionEnd < 0 ? undefined : asciiAt(bytes, c.at, versionEnd);
      if (version === undefined) {
        return undefined;
      }
      m.agentVersion = version;
      c.at = versionEnd;
    } else if (key === 0x11 && LITTLE_ENDIAN && end - c.at >= 8) {
      for (let i = 0; i < 8; i++) {
        F64_BYTES[i] = bytes[c.at++]!;
      }
      m.uptimeSeconds = F64[0]!;
    } else {
      return undefined; // an unknown field, a wrong wire type, or the end of the bytes
    }
  }
  return m;
}

/** A payload message without fields, from no bytes (anything else: fromBinary). */
function emptyReader(schema: DescMessage): PayloadReader {
  return (_bytes, start, end) => (start === end ? create(schema) : undefined);
}

const PAYLOAD_READERS: ReadonlyMap<string, PayloadReader> = new Map([
  ['fileHandleRead', readFileHandleRead],
  ['fileReadResponse', readFileReadResponse],
  ['fileHandleReadResponse', readFileReadResponse],
  ['pong', readPong],
  ...[...PAYLOAD_FIELDS]
    .filter(([, f]) => f.schema.fields.length === 0)
    .map(([localName, f]) => [localName, emptyReader(f.schema)] as const),
]);

const PAYLOAD_BY_NUMBER = new Map<number, PayloadField>(
  [...PAYLOAD_FIELDS].map(([localName, f]) => [
    f.number,
    { localName, schema: f.schema, read: PAYLOAD_READERS.get(localName) },
  ]),
);

/** The message, or undefined when the hand-written reader does not cover its envelope. */
function envelopeFrom(bytes: Uint8Array): AgentMessage | undefined {
  const c = new WireCursor(bytes, 0, bytes.length);
  let id: string | undefined;
  let timestamp: Timestamp | undefined;
  let payloadField: PayloadField | undefined;
  let payloadStart = 0;
  let payloadEnd = 0;
  while (c.at < bytes.length) {
    const key = c.varint();
    if (key < 0 || (key & 7) !== LEN) {
      return undefined;
    }
    const end = c.lengthDelimited();
    if (end < 0) {
      return undefined;
    }
    const from = c.at;
    c.at = end;
    if (key === MESSAGE_ID_KEY && id === undefined) {
      id = asciiAt(bytes, from, end);
      if (id === undefined) {
        return undefined;
      }
    } else if (key === TIMESTAMP_KEY && timestamp === undefined) {
      timestamp = timestampAt(bytes, from, end);
      if (timestamp === undefined) {
        return undefined;
      }
    } else {
      const field = payloadField === undefined ? PAYLOAD_BY_NUMBER.get(key >>> 3) : undefined;
      if (field === undefined) {
        return undefined; // unknown, repeated, or a second payload: fromBinary decides
      }
      payloadField = field;
      payloadStart = from;
      payloadEnd = end;
    }
  }
  const message = create(AgentMessageSchema);
  message.messageId = id ?? '';
  message.timestamp = timestamp;
  if (payloadField !== undefined) {
    message.payload = {
      case: payloadField.localName,
      value:
        payloadField.read?.(bytes, payloadStart, payloadEnd) ??
        fromBinary(payloadField.schema, bytes.subarray(payloadStart, payloadEnd)),
    } as AgentPayload;
  }
  return message;
}

/** An AgentMessage from its bytes: fromBinary(AgentMessageSchema, bytes), faster. */
export function decodeAgentMessage(bytes: Uint8Array): AgentMessage {
  return envelopeFrom(bytes) ?? fromBinary(AgentMessageSchema, bytes);
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
        const message = decodeAgentMessage(payload);
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
  /** Give up on a half-received frame after twice this long without a byte (PROTOCOL.md §3). */
  partialFrameTimeoutMs: number;
  onMessage(message: AgentMessage): void;
}

/**
 * Both ends' reader of one channel: decodes pushed bytes and, when a frame stays half-received
 * for two periods of partialFrameTimeoutMs in a row, abandons it and rescans its bytes, so that a
 * writer that vanished mid-frame cannot swallow the next writer's frames (a sync included) for
 * good. One silent period is not enough: it may be this reader's own stall (its process, or the
 * whole VM, not scheduled), after which the timer fires before the bytes that arrived meanwhile
 * are read; they are read within the second period. (A TCG guest on a busy machine lost an
 * update chunk that way: half of it read, a stall, the frame abandoned, its rest skipped.)
 */
export class AgentStreamReader {
  private readonly decoder: AgentMessageDecoder;
  private timer: NodeJS.Timeout | undefined;
  /** A period has passed without a byte; the next one without a byte abandons the frame. */
  private silent = false;

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
    this.silent = false;
    for (const message of this.decoder.push(chunk)) {
      this.options.onMessage(message);
    }
    this.arm();
  }

  reset(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.silent = false;
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
      if (!this.silent) {
        this.silent = true;
        this.arm();
        return;
      }
      this.silent = false;
      for (const message of this.decoder.abandonPartial()) {
        this.options.onMessage(message);
      }
      this.arm();
    }, this.options.partialFrameTimeoutMs);
    this.timer.unref();
  }
}
