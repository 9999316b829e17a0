import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  AgentMessageSchema,
  ExecuteResponseSchema,
  FileHandleReadRequestSchema,
  FileReadResponseSchema,
  FileWriteRequestSchema,
  GetOsInfoResponseSchema,
  OsInfoSchema,
  PingRequestSchema,
  PongResponseSchema,
  type AgentMessage,
} from '../gen/limiquantix/agent/v1/agent_pb.js';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AgentMessageDecoder,
  AgentStreamReader,
  agentMessage,
  agentMessageBinary,
  decodeAgentMessage,
  encodeAgentMessage,
  JOINED_FRAME_MAX_BYTES,
  stablePayload,
} from './message-codec.js';
import { FrameDecoder, FrameTooLargeError, encodeFrame } from './frame-codec.js';

/** Pongs the hand-written codec covers, and some it leaves to protobuf-es. */
const PONGS = [
  {},
  { agentVersion: '0.4.1', uptimeSeconds: 1.5 },
  { agentVersion: '0.4.1+g1234567', uptimeSeconds: 86_400.123456789 },
  { uptimeSeconds: 0 },
  { uptimeSeconds: -0 },
  { uptimeSeconds: -2.5 },
  { uptimeSeconds: Number.MIN_VALUE },
  { uptimeSeconds: Infinity },
  { uptimeSeconds: -Infinity },
  { uptimeSeconds: NaN },
  { agentVersion: 'x'.repeat(200), uptimeSeconds: 3 },
  { agentVersion: 'ünïcode ✓', uptimeSeconds: 4 },
];

describe('encodeAgentMessage', () => {
  const cases = [
    agentMessage('r1', {
      case: 'fileReadResponse',
      value: create(FileReadResponseSchema, {
        data: randomBytes(200_000),
        eof: true,
        totalSize: 200_000n,
        mode: 0o100644,
      }),
    }),
    agentMessage('w1', {
      case: 'fileWrite',
      value: create(FileWriteRequestSchema, {
        path: '/tmp/x',
        offset: 5n,
        data: randomBytes(70_000),
        uploadId: 'u',
        commit: true,
        mode: 0o600,
      }),
    }),
    agentMessage('e1', {
      case: 'executeResponse',
      value: create(ExecuteResponseSchema, {
        exitCode: 0,
        stdout: randomBytes(20_000),
        stderr: randomBytes(30_000),
        pid: 42,
      }),
    }),
    agentMessage('e2', {
      case: 'executeResponse',
      value: create(ExecuteResponseSchema, {
        stdout: new Uint8Array(0),
        stderr: randomBytes(40_000),
        signal: 'SIGKILL',
      }),
    }),
  ];

  it('should decode spliced bulk fields exactly like toBinary output when data is large', () => {
    for (const message of cases) {
      const parts = encodeAgentMessage(message);
      // Frames under 64 KiB are one buffer; larger ones keep the bulk bytes as their own parts.
      const frameBytes = parts.reduce((n, p) => n + p.length, 0);
      expect(parts.length > 2).toBe(frameBytes >= 64 * 1024);
      const payloads = new FrameDecoder().push(Buffer.concat(parts));
      expect(payloads).toHaveLength(1);
      const decoded = fromBinary(AgentMessageSchema, payloads[0]!);
      expect(equals(AgentMessageSchema, decoded, message)).toBe(true);
      expect(
        equals(
          AgentMessageSchema,
          fromBinary(AgentMessageSchema, toBinary(AgentMessageSchema, message)),
          decoded,
        ),
      ).toBe(true);
    }
  });

  it('should leave the message unchanged after encoding', () => {
    const message = cases[0]!;
    const before = toBinary(AgentMessageSchema, message);
    encodeAgentMessage(message);
    expect(Buffer.from(toBinary(AgentMessageSchema, message)).equals(Buffer.from(before))).toBe(
      true,
    );
  });

  it('should send a small message as one buffer', () => {
    const parts = encodeAgentMessage(agentMessage('p', { case: 'ping', value: {} as never }));
    expect(parts).toHaveLength(1);
    expect(new AgentMessageDecoder().push(parts[0]!)[0]?.messageId).toBe('p');
  });

  it('should join a small frame with bulk bytes in the buffer its source lends, and no other', () => {
    const lent: Buffer[] = [];
    const source = (bytes: number) => {
      const slab = Buffer.alloc(JOINED_FRAME_MAX_BYTES + 100, 0xee);
      lent.push(slab);
      return slab.subarray(0, bytes);
    };
    const chunk = (size: number) =>
      agentMessage('r', {
        case: 'fileHandleReadResponse',
        value: create(FileReadResponseSchema, { data: randomBytes(size), totalSize: 9n }),
      });
    const small = chunk(4096);
    const parts = encodeAgentMessage(small, undefined, source);
    expect(parts).toHaveLength(1);
    expect(lent).toHaveLength(1);
    // The frame is the lent buffer's bytes, and decodes to the message.
    expect(parts[0]!.buffer).toBe(lent[0]!.buffer);
    expect(parts[0]!.length).toBeLessThanOrEqual(JOINED_FRAME_MAX_BYTES);
    const [decoded] = new AgentMessageDecoder().push(parts[0]!);
    expect(equals(AgentMessageSchema, decoded!, small)).toBe(true);
    // A frame too big to join keeps its parts (header, envelope, the data's key and length, the
    // data); a message without bulk bytes needs no buffer.
    expect(encodeAgentMessage(chunk(JOINED_FRAME_MAX_BYTES), undefined, source).length).toBe(4);
    encodeAgentMessage(agentMessage('p', { case: 'ping', value: {} as never }), undefined, source);
    expect(lent).toHaveLength(1);
  });
});

describe('agentMessageBinary (the hand-written envelope)', () => {
  const payloadFields = AgentMessageSchema.fields.filter((f) => f.oneof?.localName === 'payload');

  /** exact: the frame carries toBinary's bytes (false: bulk fields spliced, decoded the same). */
  function expectSameBytes(message: AgentMessage, exact = true): void {
    const expected = Buffer.from(toBinary(AgentMessageSchema, message));
    expect(Buffer.from(agentMessageBinary(message)).equals(expected)).toBe(true);
    const frame = Buffer.concat(encodeAgentMessage(message, 64 * 1024 * 1024));
    const payloads = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024 }).push(frame);
    expect(payloads).toHaveLength(1);
    if (exact) {
      // Small frames carry the message exactly as toBinary writes it.
      expect(Buffer.from(payloads[0]!).equals(expected)).toBe(true);
      expect(frame.equals(encodeFrame(expected))).toBe(true);
    }
    expect(equals(AgentMessageSchema, fromBinary(AgentMessageSchema, payloads[0]!), message)).toBe(
      true,
    );
  }

  it('should write every payload case exactly as toBinary does', () => {
    expect(payloadFields.length).toBeGreaterThan(40);
    for (const field of payloadFields) {
      if (field.fieldKind !== 'message') {
        throw new Error(`payload case ${field.localName} is not a message`);
      }
      expectSameBytes(
        agentMessage(`id-${field.number}`, {
          case: field.localName,
          value: create(field.message),
        } as AgentMessage['payload']),
      );
    }
  });

  it('should write ids, timestamps and filled payloads exactly as toBinary does', () => {
    const pong = { case: 'pong', value: create(PongResponseSchema, { agentVersion: '1.2.3' }) };
    const samples: AgentMessage[] = [
      create(AgentMessageSchema, { messageId: 'x', payload: pong as never }),
      create(AgentMessageSchema, { payload: pong as never }),
      create(AgentMessageSchema, {
        messageId: 'ünïcode-✓',
        timestamp: { seconds: 0n, nanos: 0 },
        payload: pong as never,
      }),
      create(AgentMessageSchema, {
        messageId: 'a'.repeat(200),
        timestamp: { seconds: 2n ** 40n, nanos: 999_999_999 },
        payload: pong as never,
      }),
      // Outside the hand-written envelope: toBinary writes these.
      create(AgentMessageSchema, {
        messageId: 'neg',
        timestamp: { seconds: -5n, nanos: 3 },
        payload: pong as never,
      }),
      create(AgentMessageSchema, { messageId: 'none' }),
      agentMessage('small-bulk', {
        case: 'fileHandleReadResponse',
        value: create(FileReadResponseSchema, { data: randomBytes(1000), eof: true }),
      }),
    ];
    const unknown = agentMessage('u', pong as never);
    unknown.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([1]) }];
    samples.push(unknown);
    for (const message of samples) {
      expectSameBytes(message);
    }
  });

  it('should write file read requests exactly as toBinary does', () => {
    for (const init of [
      {},
      { handle: 1000n, length: 4096 },
      { handle: 2n ** 53n - 1n, length: 0xffffffff, offset: 0n },
      { offset: 2n ** 40n },
      // Outside the hand-written request: toBinary writes these.
      { handle: 2n ** 63n, length: 1 },
      { handle: 3n, limits: { roots: ['/srv'] } },
    ]) {
      expectSameBytes(
        agentMessage('q', {
          case: 'fileHandleRead',
          value: create(FileHandleReadRequestSchema, init),
        }),
      );
    }
  });

  it('should write pongs and empty requests exactly as toBinary does', () => {
    for (const init of PONGS) {
      const message = agentMessage('p', {
        case: 'pong',
        value: create(PongResponseSchema, init),
      });
      if (Number.isNaN(init.uptimeSeconds)) {
        // (equals() has NaN unequal to itself: the bytes say it.)
        const expected = Buffer.from(toBinary(AgentMessageSchema, message));
        expect(Buffer.from(agentMessageBinary(message)).equals(expected)).toBe(true);
      } else {
        expectSameBytes(message);
      }
    }
    const unknown = create(PongResponseSchema, { agentVersion: '1' });
    unknown.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([1]) }];
    expectSameBytes(agentMessage('u', { case: 'pong', value: unknown }));
    const ping = create(PingRequestSchema);
    ping.$unknown = [{ no: 3, wireType: 0, data: new Uint8Array([7]) }];
    expectSameBytes(agentMessage('u', { case: 'ping', value: ping }));
  });

  it('should splice bulk bytes of any size above a kilobyte and decode them the same', () => {
    const bulky: AgentMessage[] = [
      agentMessage('exec', {
        case: 'executeResponse',
        value: create(ExecuteResponseSchema, { stdout: randomBytes(10_000), exitCode: 3 }),
      }),
      agentMessage('exec-err', {
        case: 'executeResponse',
        value: create(ExecuteResponseSchema, { stderr: randomBytes(2000), pid: 7 }),
      }),
      agentMessage('read4k', {
        case: 'fileHandleReadResponse',
        value: create(FileReadResponseSchema, {
          data: randomBytes(4096),
          totalSize: 1n << 40n,
          offset: 4096n,
          mtimeMs: 1_733_390_000_000n,
          mode: 0o100644,
        }),
      }),
      agentMessage('read1m', {
        case: 'fileHandleReadResponse',
        value: create(FileReadResponseSchema, { data: randomBytes(1 << 20), eof: true }),
      }),
      agentMessage('bigger', {
        case: 'fileReadResponse',
        value: create(FileReadResponseSchema, { data: randomBytes(100_000), eof: true }),
      }),
    ];
    for (const message of bulky) {
      expectSameBytes(message, false);
    }
    // Small frames go out as one buffer, large ones keep the bulk bytes uncopied.
    const small = encodeAgentMessage(bulky[2]!);
    expect(small).toHaveLength(1);
    const large = encodeAgentMessage(bulky[3]!, 64 * 1024 * 1024);
    const data = (bulky[3]!.payload.value as { data: Uint8Array }).data;
    expect(large.some((part) => part === data)).toBe(true);
  });

  it("should write a file chunk reply's other fields exactly as toBinary does, then the data", () => {
    const values = [
      {},
      { eof: true },
      { totalSize: 1n, mode: 1, offset: 1n, mtimeMs: 1n },
      { totalSize: 127n, offset: 128n, mtimeMs: 16_383n, mode: 16_384 },
      { totalSize: BigInt(Number.MAX_SAFE_INTEGER), offset: 2n ** 40n, mode: 0xffffffff },
      {
        eof: true,
        totalSize: 67_108_864n,
        mode: 0o100644,
        offset: 4096n,
        mtimeMs: 1_765_000_000_000n,
      },
      // Outside the hand-written fields (toBinary writes them): the same bytes still.
      { mtimeMs: -1n, totalSize: 5n },
      { totalSize: 2n ** 63n },
    ];
    const payloadField = AgentMessageSchema.fields.find(
      (f) => f.localName === 'fileHandleReadResponse',
    )!.number;
    for (const sizes of [4096, 200_000]) {
      for (const init of values) {
        const data = randomBytes(sizes);
        const value = create(FileReadResponseSchema, { ...init, data });
        const message = agentMessage('rest', { case: 'fileHandleReadResponse', value });
        const frame = Buffer.concat(encodeAgentMessage(message, 64 * 1024 * 1024));
        const [payload] = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024 }).push(frame);
        // The payload field's bytes: the other fields as toBinary writes them, then the data.
        const reader = new BinaryReader(payload!);
        let inner: Uint8Array | undefined;
        while (reader.pos < reader.len) {
          const [no, wire] = reader.tag();
          if (no === payloadField) {
            inner = reader.bytes();
          } else {
            reader.skip(wire);
          }
        }
        const rest = toBinary(FileReadResponseSchema, { ...value, data: new Uint8Array(0) });
        const dataField = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(data).finish();
        expect(Buffer.from(inner!).equals(Buffer.concat([rest, dataField]))).toBe(true);
        expect(equals(AgentMessageSchema, fromBinary(AgentMessageSchema, payload!), message)).toBe(
          true,
        );
      }
    }
  });

  it('should refuse a small message larger than the frame bound', () => {
    const message = agentMessage('p', { case: 'pong', value: create(PongResponseSchema) });
    expect(() => encodeAgentMessage(message, 10)).toThrow(FrameTooLargeError);
  });
});

describe('decodeAgentMessage (the hand-read envelope)', () => {
  /**
   * Both readers agree: the same message, or both refuse the bytes. byValue: compared with
   * toEqual (NaN equals NaN there, and -0 is not 0; equals() has NaN unequal to itself).
   */
  function expectAsFromBinary(bytes: Uint8Array, byValue = false): void {
    let expected: AgentMessage;
    try {
      expected = fromBinary(AgentMessageSchema, bytes);
    } catch {
      // (Errors from another realm, such as TextDecoder's under jest, are not `instanceof Error`.)
      expect(() => decodeAgentMessage(bytes)).toThrow();
      return;
    }
    const decoded = decodeAgentMessage(bytes);
    if (byValue) {
      expect(decoded).toEqual(expected);
      return;
    }
    expect(equals(AgentMessageSchema, decoded, expected)).toBe(true);
    expect(decoded.$unknown).toEqual(expected.$unknown);
    expect(decoded.timestamp).toEqual(expected.timestamp);
  }

  const pong = { case: 'pong', value: create(PongResponseSchema, { agentVersion: '1.2.3' }) };
  const samples: AgentMessage[] = [
    agentMessage('r-1', {
      case: 'fileHandleReadResponse',
      value: create(FileReadResponseSchema, { data: randomBytes(4096), totalSize: 9n, eof: true }),
    }),
    create(AgentMessageSchema, { messageId: 'x', payload: pong as never }),
    create(AgentMessageSchema, { payload: pong as never }),
    create(AgentMessageSchema, { messageId: 'none' }),
    create(AgentMessageSchema, {}),
    create(AgentMessageSchema, {
      messageId: 'ünïcode-✓',
      timestamp: { seconds: 0n, nanos: 0 },
      payload: pong as never,
    }),
    create(AgentMessageSchema, {
      messageId: 'big',
      timestamp: { seconds: 2n ** 40n, nanos: 999_999_999 },
      payload: pong as never,
    }),
    create(AgentMessageSchema, {
      messageId: 'neg',
      timestamp: { seconds: -5n, nanos: -3 },
      payload: pong as never,
    }),
  ];

  it('should read every payload case, id and timestamp as fromBinary does', () => {
    for (const field of AgentMessageSchema.fields) {
      if (field.oneof?.localName === 'payload' && field.fieldKind === 'message') {
        expectAsFromBinary(
          toBinary(
            AgentMessageSchema,
            agentMessage(`id-${field.number}`, {
              case: field.localName,
              value: create(field.message),
            } as AgentMessage['payload']),
          ),
        );
      }
    }
    for (const message of samples) {
      expectAsFromBinary(toBinary(AgentMessageSchema, message));
      expectAsFromBinary(Buffer.concat(encodeAgentMessage(message)).subarray(20));
    }
  });

  it('should read file read requests and replies by hand exactly as fromBinary does', () => {
    const requests = [
      {},
      { handle: 1000n, length: 4096 },
      { handle: 2n ** 52n, length: 0xffffffff, offset: 0n },
      { handle: 7n, offset: 2n ** 53n - 1n },
      // Outside the hand reader: fromBinary reads these.
      { handle: 2n ** 63n, length: 1 },
      { handle: 1n, limits: { roots: ['/srv'] } },
    ];
    const replies = [
      {},
      { data: randomBytes(4096), eof: true, totalSize: 1n << 40n, mode: 0o100644 },
      { data: randomBytes(10), offset: 4096n, mtimeMs: 1_765_000_000_000n, mode: 0xffffffff },
      { mtimeMs: -1n },
      { totalSize: 2n ** 64n - 1n, data: randomBytes(3) },
    ];
    const messages = [
      ...requests.map((r, i) =>
        agentMessage(`q${i}`, {
          case: 'fileHandleRead',
          value: create(FileHandleReadRequestSchema, r),
        }),
      ),
      ...replies.flatMap((r, i) =>
        (['fileHandleReadResponse', 'fileReadResponse'] as const).map((c) =>
          agentMessage(`a${i}`, { case: c, value: create(FileReadResponseSchema, r) }),
        ),
      ),
    ];
    for (const message of messages) {
      const bytes = toBinary(AgentMessageSchema, message);
      expectAsFromBinary(bytes);
      for (let n = 0; n < bytes.length; n++) {
        expectAsFromBinary(bytes.subarray(0, n));
      }
    }
    // A scalar repeated (the last wins), a wire type that does not match, an unknown field.
    const q = Buffer.from(
      toBinary(
        FileHandleReadRequestSchema,
        create(FileHandleReadRequestSchema, { handle: 5n, length: 9 }),
      ),
    );
    const field = AgentMessageSchema.fields.find((f) => f.localName === 'fileHandleRead')!.number;
    for (const inner of [
      Buffer.concat([q, Buffer.from([0x10, 0x05])]),
      Buffer.concat([q, Buffer.from([0x12, 0x00])]),
      Buffer.concat([q, Buffer.from([0x48, 0x01])]),
    ]) {
      const key = new BinaryWriter().tag(field, WireType.LengthDelimited).bytes(inner).finish();
      expectAsFromBinary(Buffer.concat([Buffer.from([0x0a, 1, 0x78]), key]));
    }
  });

  it('should read pongs and empty requests by hand exactly as fromBinary does', () => {
    const pongField = AgentMessageSchema.fields.find((f) => f.localName === 'pong')!.number;
    const pingField = AgentMessageSchema.fields.find((f) => f.localName === 'ping')!.number;
    const wrap = (field: number, inner: Uint8Array) =>
      Buffer.concat([
        Buffer.from([0x0a, 1, 0x78]),
        new BinaryWriter().tag(field, WireType.LengthDelimited).bytes(inner).finish(),
      ]);
    const pongBytes = (init: { agentVersion?: string; uptimeSeconds?: number }) =>
      toBinary(PongResponseSchema, create(PongResponseSchema, init));
    const messages = [
      ...PONGS.map((init) =>
        toBinary(
          AgentMessageSchema,
          agentMessage('p', { case: 'pong', value: create(PongResponseSchema, init) }),
        ),
      ),
      toBinary(
        AgentMessageSchema,
        agentMessage('q', { case: 'ping', value: create(PingRequestSchema) }),
      ),
      // Repeated (the last wins), a wire type that does not match, an unknown field, non-ASCII.
      wrap(
        pongField,
        Buffer.concat([
          pongBytes({ agentVersion: 'v', uptimeSeconds: 2 }),
          pongBytes({ agentVersion: 'w', uptimeSeconds: 3 }),
        ]),
      ),
      wrap(pongField, Buffer.from([0x10, 0x05])),
      wrap(pongField, Buffer.from([0x0a, 2, 0xc3, 0xa9])),
      wrap(pongField, Buffer.from([0x48, 0x01])),
      wrap(pingField, Buffer.from([0x08, 0x01])),
      wrap(pingField, Buffer.from([0x12, 0x00])),
    ];
    for (const bytes of messages) {
      for (let n = 0; n <= bytes.length; n++) {
        expectAsFromBinary(bytes.subarray(0, n), true);
      }
    }
  });

  it('should leave unknown, repeated and damaged fields to fromBinary, with its result', () => {
    const base = Buffer.from(toBinary(AgentMessageSchema, samples[1]!));
    const withUnknown = agentMessage('u', pong as never);
    withUnknown.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([1]) }];
    const variants: Uint8Array[] = [
      toBinary(AgentMessageSchema, withUnknown),
      // The id twice (the last wins), the payload twice (merged), two payload cases.
      Buffer.concat([Buffer.from([0x0a, 1, 0x61]), base]),
      Buffer.concat([base, base]),
      Buffer.concat([base, toBinary(AgentMessageSchema, samples[0]!)]),
      // A timestamp with an unknown field; a varint where a message belongs.
      Buffer.concat([Buffer.from([0x12, 2, 0x18, 1]), base]),
      Buffer.concat([Buffer.from([0x10, 1]), base]),
      // Truncated anywhere; garbage.
      ...Array.from({ length: base.length }, (_, n) => base.subarray(0, n)),
      Buffer.from([0xff, 0xff, 0xff]),
      Buffer.from([0x00]),
    ];
    for (const bytes of variants) {
      expectAsFromBinary(bytes);
    }
    for (let i = 0; i < 300; i++) {
      expectAsFromBinary(randomBytes(1 + (i % 40)));
    }
  });
});

describe('AgentStreamReader partial frames', () => {
  const frameOf = (id: string) =>
    Buffer.concat(
      encodeAgentMessage(agentMessage(id, { case: 'pong', value: create(PongResponseSchema) })),
    );

  /** A reader with what it read and what it reported. */
  function readerWith(partialFrameTimeoutMs: number) {
    const seen: string[] = [];
    const issues: string[] = [];
    const reader = new AgentStreamReader({
      partialFrameTimeoutMs,
      onMessage: (m) => seen.push(m.messageId),
      onIssue: (i) => issues.push(i.kind),
    });
    return { reader, seen, issues };
  }

  async function until(done: () => boolean): Promise<void> {
    for (let waited = 0; !done() && waited < 5000; waited += 10) {
      await sleep(10);
    }
  }

  it('should wait for a frame whose bytes keep coming, and abandon one that stalls', async () => {
    const { reader, seen, issues } = readerWith(150);
    try {
      // Bytes trickle in, each within the timeout of the last: the frame is kept.
      const slow = frameOf('slow');
      for (let i = 0; i < slow.length; i += 8) {
        reader.push(slow.subarray(i, i + 8));
        await sleep(40);
      }
      expect(seen).toEqual(['slow']);
      expect(issues).toEqual([]);
      // Half a frame, then nothing: abandoned (after two silent periods), and the next whole
      // frame is read.
      const stalled = frameOf('stalled');
      reader.push(stalled.subarray(0, stalled.length - 3));
      await until(() => issues.includes('abandoned-partial'));
      expect(issues).toContain('abandoned-partial');
      reader.push(frameOf('next'));
      expect(seen).toEqual(['slow', 'next']);
    } finally {
      reader.close();
    }
  });

  it('should keep a frame whose rest arrived while the reader was stalled past the timeout', async () => {
    const { reader, seen, issues } = readerWith(100);
    const server = createServer((socket) => socket.on('data', (chunk) => reader.push(chunk)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      await new Promise((resolve) => client.once('connect', resolve));
      const frame = frameOf('late');
      client.write(frame.subarray(0, 10));
      await until(() => reader.frames.hasPartialFrame);
      expect(reader.frames.hasPartialFrame).toBe(true);
      // The rest is sent at once, and this thread stalls past the timeout before it reads it
      // (as a starved process or VM does): its timer then fires before the bytes are read.
      client.write(frame.subarray(10));
      const busyUntil = Date.now() + 300;
      while (Date.now() < busyUntil) {
        // busy: the event loop does not turn
      }
      await until(() => seen.length > 0);
      expect(seen).toEqual(['late']);
      expect(issues).toEqual([]);
    } finally {
      reader.close();
      client.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('stablePayload', () => {
  const osReply = () =>
    create(GetOsInfoResponseSchema, {
      os: create(OsInfoSchema, { name: 'Debian GNU/Linux', version: '12', arch: 'x86_64' }),
    });

  it('should encode a stable reply exactly as toBinary does when it is sent again', () => {
    const value = stablePayload('getOsInfoResponse', osReply());
    for (const id of ['o1', 'o2']) {
      const message = agentMessage(id, { case: 'getOsInfoResponse', value });
      const [frame] = encodeAgentMessage(message);
      const decoded = new AgentMessageDecoder().push(frame!);
      expect(decoded).toHaveLength(1);
      expect(equals(AgentMessageSchema, decoded[0]!, message)).toBe(true);
      expect(Buffer.from(agentMessageBinary(message))).toEqual(
        Buffer.from(toBinary(AgentMessageSchema, message)),
      );
    }
  });

  it('should refuse a message that the payload case does not carry', () => {
    expect(() => stablePayload('pong', osReply())).toThrow(/carries/);
    expect(() => stablePayload('noSuchCase' as never, osReply())).toThrow(/no payload case/);
  });
});
