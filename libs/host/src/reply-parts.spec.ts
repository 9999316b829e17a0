import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { GuestResponseSchema, type GuestResponse } from '@lq/proto';
import {
  REPLY_PART_ENVELOPE_BYTES,
  ReplyAssembler,
  ReplyPartsError,
  splitReply,
} from './reply-parts.js';

const MESSAGE = REPLY_PART_ENVELOPE_BYTES + 64 * 1024;

function bigReply(stdoutBytes: number): GuestResponse {
  return create(GuestResponseSchema, {
    requestId: 'req-1',
    vmId: 'vm-1',
    nodeId: 'node-1',
    result: {
      case: 'execute',
      value: { stdout: randomBytes(stdoutBytes), stdoutTruncated: true, exitCode: 0 },
    },
  });
}

function partOf(message: Uint8Array) {
  return fromBinary(GuestResponseSchema, message).part!;
}

function reencode(message: Uint8Array, edit: (r: GuestResponse) => void): Uint8Array {
  const r = fromBinary(GuestResponseSchema, message);
  edit(r);
  return toBinary(GuestResponseSchema, r);
}

/** Byte equality of two replies (jest's deep equality is slow on megabytes). */
function expectSame(actual: GuestResponse | undefined, expected: GuestResponse): void {
  expect(actual).toBeDefined();
  const a = Buffer.from(toBinary(GuestResponseSchema, actual!));
  expect(a.equals(Buffer.from(toBinary(GuestResponseSchema, expected)))).toBe(true);
}

function assemble(messages: Uint8Array[], maxBytes = 64 * 1024 * 1024) {
  const a = new ReplyAssembler(maxBytes);
  let whole: GuestResponse | undefined;
  for (const m of messages) {
    whole = a.add(m) ?? whole;
  }
  return { whole, assembler: a };
}

describe('reply parts', () => {
  it('should send a reply that fits one message as it is', () => {
    const reply = bigReply(1000);
    const messages = splitReply(reply, MESSAGE);
    expect(messages).toHaveLength(1);
    expect(Buffer.from(messages[0]!).equals(toBinary(GuestResponseSchema, reply))).toBe(true);
    expectSame(assemble(messages).whole, reply);
  });

  it('should split a reply larger than a message into parts no larger than a message', () => {
    const reply = bigReply(1024 * 1024 + 17);
    const messages = splitReply(reply, MESSAGE);
    expect(messages.length).toBeGreaterThan(10);
    for (const [i, m] of messages.entries()) {
      expect(m.length).toBeLessThanOrEqual(MESSAGE);
      const r = fromBinary(GuestResponseSchema, m);
      expect(r.result.case).toBeUndefined();
      expect(r.requestId).toBe('req-1');
      expect(r.part).toMatchObject({ index: i, count: messages.length });
    }
    expectSame(assemble(messages).whole, reply);
  });

  it('should reassemble parts that arrive out of order, duplicates included', () => {
    const reply = bigReply(700 * 1024);
    const messages = splitReply(reply, MESSAGE);
    const shuffled = [...messages].reverse();
    shuffled.splice(3, 0, messages[5]!);
    expectSame(assemble(shuffled).whole, reply);
  });

  it('should wait while a part is missing and report the progress', () => {
    const messages = splitReply(bigReply(300 * 1024), MESSAGE);
    const missing = messages.filter((_, i) => i !== 2);
    const { whole, assembler } = assemble(missing);
    expect(whole).toBeUndefined();
    expect(assembler.progress).toEqual({ received: messages.length - 1, count: messages.length });
    expect(assembler.add(messages[2]!)).toBeDefined();
  });

  it('should refuse a reply over its bound before keeping any part', () => {
    const messages = splitReply(bigReply(300 * 1024), MESSAGE);
    const a = new ReplyAssembler(200 * 1024);
    expect(() => a.add(messages[0]!)).toThrow(ReplyPartsError);
    expect(() => a.add(messages[0]!)).toThrow(/more than this requester's bound of 204800/);
    expect(a.progress.received).toBe(0);
  });

  it('should refuse a part that disagrees with the first, or is out of range', () => {
    const messages = splitReply(bigReply(300 * 1024), MESSAGE);
    const other = splitReply(bigReply(300 * 1024), MESSAGE);
    let a = new ReplyAssembler(1 << 30);
    a.add(messages[0]!);
    expect(() => a.add(other[1]!)).toThrow(/disagrees with the first/);

    a = new ReplyAssembler(1 << 30);
    a.add(messages[0]!);
    const outOfRange = reencode(messages[1]!, (r) => {
      r.part!.index = r.part!.count;
    });
    expect(() => a.add(outOfRange)).toThrow(/out of range/);

    a = new ReplyAssembler(1 << 30);
    a.add(messages[0]!);
    const short = reencode(messages[1]!, (r) => {
      r.part!.data = r.part!.data.subarray(1);
    });
    expect(() => a.add(short)).toThrow(/does not fit a reply/);
  });

  it('should refuse parts whose bytes do not match the digest', () => {
    const messages = splitReply(bigReply(300 * 1024), MESSAGE);
    const altered = messages.map((m, i) =>
      i === 1
        ? reencode(m, (r) => {
            const data = Buffer.from(r.part!.data);
            data[10]! ^= 0xff;
            r.part!.data = data;
          })
        : m,
    );
    expect(() => assemble(altered)).toThrow(/does not match its digest/);
  });

  it('should refuse a whole reply mixed into the parts of another', () => {
    const messages = splitReply(bigReply(300 * 1024), MESSAGE);
    const a = new ReplyAssembler(1 << 30);
    a.add(messages[0]!);
    expect(() => a.add(toBinary(GuestResponseSchema, bigReply(10)))).toThrow(/among the parts/);
  });

  it('should refuse a part header that cannot be a reply', () => {
    const [first] = splitReply(bigReply(300 * 1024), MESSAGE);
    const one = reencode(first!, (r) => {
      r.part!.count = 1;
    });
    expect(() => new ReplyAssembler(1 << 30).add(one)).toThrow(/header is invalid/);
    expect(partOf(first!).sha256).toHaveLength(32);
  });
});
