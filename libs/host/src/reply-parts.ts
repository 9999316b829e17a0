import { createHash } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { GuestResponseSchema, type GuestReplyPart, type GuestResponse } from '@lq/proto';

// Reply parts (PROTOCOL.md §9): a GuestResponse larger than one NATS message goes as several
// GuestResponses, each carrying a slice of the whole encoded reply in `part`. The daemon splits;
// the requester reassembles, bounded in size and checked by digest.

/** Room in a NATS message for everything but a part's slice (subject, headers, part fields). */
export const REPLY_PART_ENVELOPE_BYTES = 16 * 1024;

/**
 * A reply as the NATS messages that carry it: the encoded response itself when it fits
 * `maxMessageBytes`, else numbered parts of at most `maxMessageBytes` each.
 */
export function splitReply(response: GuestResponse, maxMessageBytes: number): Uint8Array[] {
  const bytes = toBinary(GuestResponseSchema, response);
  if (bytes.length <= maxMessageBytes) {
    return [bytes];
  }
  const sliceBytes = maxMessageBytes - REPLY_PART_ENVELOPE_BYTES;
  if (sliceBytes < 1024) {
    throw new RangeError(`a NATS message of ${maxMessageBytes} bytes leaves no room for parts`);
  }
  const count = Math.ceil(bytes.length / sliceBytes);
  const sha256 = createHash('sha256').update(bytes).digest();
  const messages: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    messages.push(
      toBinary(
        GuestResponseSchema,
        create(GuestResponseSchema, {
          requestId: response.requestId,
          vmId: response.vmId,
          nodeId: response.nodeId,
          part: {
            index,
            count,
            totalBytes: BigInt(bytes.length),
            sha256,
            data: bytes.subarray(index * sliceBytes, (index + 1) * sliceBytes),
          },
        }),
      ),
    );
  }
  return messages;
}

/** A reply that cannot be reassembled: too large for the bound, inconsistent, or altered. */
export class ReplyPartsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplyPartsError';
  }
}

/**
 * Collects one reply's messages. `add` returns the response once it is whole (a single message,
 * or the last missing part), undefined while parts are missing, and throws ReplyPartsError for
 * a reply over `maxBytes` (before keeping any of it) or a part that does not fit the others.
 */
export class ReplyAssembler {
  private first: GuestReplyPart | undefined;
  private readonly parts = new Map<number, Uint8Array>();
  private received = 0;
  private sliceBytes: number | undefined;

  constructor(private readonly maxBytes: number) {}

  /** Parts received so far, and how many there are (0 before the first). */
  get progress(): { received: number; count: number } {
    return { received: this.parts.size, count: this.first?.count ?? 0 };
  }

  add(message: Uint8Array): GuestResponse | undefined {
    const response = fromBinary(GuestResponseSchema, message);
    const part = response.part;
    if (!part) {
      if (this.first) {
        throw new ReplyPartsError('a whole reply arrived among the parts of another');
      }
      return response;
    }
    const total = Number(part.totalBytes);
    if (!this.first) {
      if (total > this.maxBytes) {
        throw new ReplyPartsError(
          `the reply is ${total} bytes, more than this requester's bound of ${this.maxBytes}`,
        );
      }
      if (part.count < 2 || part.sha256.length !== 32 || total < part.count) {
        throw new ReplyPartsError(
          `reply part header is invalid (count ${part.count}, ${total} bytes, digest of ${part.sha256.length} bytes)`,
        );
      }
      this.first = part;
    } else if (
      part.count !== this.first.count ||
      part.totalBytes !== this.first.totalBytes ||
      !Buffer.from(part.sha256).equals(Buffer.from(this.first.sha256))
    ) {
      throw new ReplyPartsError('a reply part disagrees with the first (count, size or digest)');
    }
    if (part.index >= part.count) {
      throw new ReplyPartsError(`reply part ${part.index} is out of range (${part.count} parts)`);
    }
    this.checkSize(part, total);
    if (this.parts.has(part.index)) {
      return undefined; // a duplicate: the first copy stands
    }
    this.received += part.data.length;
    if (this.received > total) {
      throw new ReplyPartsError(`reply parts exceed the announced ${total} bytes`);
    }
    this.parts.set(part.index, part.data);
    if (this.parts.size < part.count) {
      return undefined;
    }
    const whole = Buffer.alloc(total);
    let offset = 0;
    for (let i = 0; i < part.count; i++) {
      const data = this.parts.get(i)!;
      whole.set(data, offset);
      offset += data.length;
    }
    if (offset !== total) {
      throw new ReplyPartsError(`reply parts add up to ${offset} bytes, not ${total}`);
    }
    if (!createHash('sha256').update(whole).digest().equals(Buffer.from(this.first.sha256))) {
      throw new ReplyPartsError('the reassembled reply does not match its digest');
    }
    const response2 = fromBinary(GuestResponseSchema, whole);
    if (response2.part) {
      throw new ReplyPartsError('a reassembled reply is itself a part');
    }
    return response2;
  }

  /**
   * Every slice but the last has the sender's slice size (learned from the first such part),
   * and the last holds the rest: 1 to slice size bytes.
   */
  private checkSize(part: GuestReplyPart, total: number): void {
    const n = part.data.length;
    const last = part.index === part.count - 1;
    let ok: boolean;
    if (!last) {
      this.sliceBytes ??= n;
      ok = n === this.sliceBytes && n * (part.count - 1) < total && n * part.count >= total;
    } else {
      ok =
        this.sliceBytes === undefined
          ? n > 0 && n <= total
          : n === total - this.sliceBytes * (part.count - 1);
    }
    if (!ok) {
      throw new ReplyPartsError(
        `reply part ${part.index} of ${part.count} has ${n} bytes, which does not fit a reply of ${total}`,
      );
    }
  }
}
