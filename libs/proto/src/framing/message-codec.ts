import { create, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import {
  AgentMessageSchema,
  ExecuteResponseSchema,
  FileReadResponseSchema,
  FileWriteRequestSchema,
  type AgentMessage,
} from '../gen/limiquantix/agent/v1/agent_pb.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  type FrameIssue,
  encodeFrameHeaderFor,
} from './frame-codec.js';

export type AgentPayload = AgentMessage['payload'];
export type AgentPayloadCase = NonNullable<AgentPayload['case']>;
/** The message type carried under one payload case. */
export type PayloadOf<C extends AgentPayloadCase> = Extract<AgentPayload, { case: C }>['value'];

/** Builds an envelope with the current time. */
export function agentMessage(messageId: string, payload: AgentPayload): AgentMessage {
  return create(AgentMessageSchema, { messageId, timestamp: timestampNow(), payload });
}

// Bulk data (file chunks, captured output) is written without being copied into the protobuf
// writer: the message is encoded with its large bytes fields empty, and those fields follow as
// separate buffers with their own key and length. Field order does not matter to a protobuf
// parser, so the result decodes exactly like toBinary's. The frame CRC runs over the parts.
const SPLICE_MIN_BYTES = 16 * 1024;
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
  const envelope = toBinary(
    AgentMessageSchema,
    create(AgentMessageSchema, { messageId: message.messageId, timestamp: message.timestamp }),
  );
  return [envelope, keyAndLength(spec.fieldNumber, innerLength), inner, ...tail];
}

// Below this a frame goes out as one buffer: one write is cheaper than a gathered one.
const JOIN_BELOW_BYTES = 64 * 1024;

/**
 * Encodes a message as the buffers of one frame, to be written back to back (writev). Small
 * frames come as a single buffer; large bytes fields are never copied.
 */
export function encodeAgentMessage(
  message: AgentMessage,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): Uint8Array[] {
  const parts = splicedPayload(message) ?? [toBinary(AgentMessageSchema, message)];
  const header = encodeFrameHeaderFor(parts, maxFrameBytes);
  if (parts.length === 1 && parts[0]!.length < JOIN_BELOW_BYTES) {
    return [Buffer.concat([header, parts[0]!])];
  }
  return [header, ...parts];
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
}

/** Frames in, AgentMessages out; an undecodable payload is reported and skipped. */
export class AgentMessageDecoder {
  readonly frames: FrameDecoder;
  private readonly onIssue: (issue: FrameIssue) => void;

  constructor(options: MessageDecoderOptions = {}) {
    this.onIssue = options.onIssue ?? (() => undefined);
    this.frames = new FrameDecoder({
      maxFrameBytes: options.maxFrameBytes,
      onIssue: this.onIssue,
    });
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
      try {
        out.push(fromBinary(AgentMessageSchema, payload));
      } catch (err) {
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

  push(chunk: Uint8Array): void {
    for (const message of this.decoder.push(chunk)) {
      this.options.onMessage(message);
    }
    this.arm();
  }

  reset(): void {
    clearTimeout(this.timer);
    this.decoder.reset();
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    if (!this.decoder.frames.hasPartialFrame) {
      return;
    }
    this.timer = setTimeout(() => {
      for (const message of this.decoder.abandonPartial()) {
        this.options.onMessage(message);
      }
      this.arm();
    }, this.options.partialFrameTimeoutMs);
    this.timer.unref();
  }
}
