import { crc32, crc32Range } from './crc32.js';
import { LentBuffers } from './lent-buffers.js';

/** "LQGA": see PROTOCOL.md §2. */
export const FRAME_MAGIC = Buffer.from([0x4c, 0x51, 0x47, 0x41]);
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 20;
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** The largest payload length the 32-bit length field can express. */
export const ABSOLUTE_MAX_FRAME_BYTES = 0xffffffff;

export type FrameIssueKind =
  | 'garbage'
  | 'bad-header-crc'
  | 'bad-header'
  | 'too-large'
  | 'bad-payload-crc'
  | 'abandoned-partial'
  | 'bad-message';

export interface FrameIssue {
  kind: FrameIssueKind;
  /** Bytes dropped because of this issue (for garbage) or the frame's claimed length. */
  bytes: number;
  detail: string;
}

export class FrameTooLargeError extends Error {
  constructor(
    readonly length: number,
    readonly maxFrameBytes: number,
  ) {
    super(`frame payload of ${length} bytes exceeds max_frame_bytes ${maxFrameBytes}`);
    this.name = 'FrameTooLargeError';
  }
}

/** Builds the 20-byte header for a payload; callers write header and payload back to back. */
export function encodeFrameHeader(
  payload: Uint8Array,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): Buffer {
  return encodeFrameHeaderFor([payload], maxFrameBytes);
}

/** The header for a payload given as consecutive parts (written without joining them). */
export function encodeFrameHeaderFor(
  parts: readonly Uint8Array[],
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): Buffer {
  let length = 0;
  for (const part of parts) {
    length += part.length;
  }
  if (length > maxFrameBytes) {
    throw new FrameTooLargeError(length, maxFrameBytes);
  }
  let crc = 0;
  for (const part of parts) {
    crc = crc32(part, crc);
  }
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(header, length, crc, maxFrameBytes);
  return header;
}

function putUInt32BE(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

/**
 * Writes the 20-byte header of a payload of `length` bytes whose CRC is `payloadCrc` into the
 * first bytes of `buf` (a frame built in place: header, then payload, in one buffer).
 */
export function writeFrameHeader(
  buf: Uint8Array,
  length: number,
  payloadCrc: number,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): void {
  if (length > maxFrameBytes) {
    throw new FrameTooLargeError(length, maxFrameBytes);
  }
  buf[0] = FRAME_MAGIC[0]!;
  buf[1] = FRAME_MAGIC[1]!;
  buf[2] = FRAME_MAGIC[2]!;
  buf[3] = FRAME_MAGIC[3]!;
  buf[4] = FRAME_VERSION;
  buf[5] = 0;
  buf[6] = 0;
  buf[7] = 0;
  putUInt32BE(buf, 8, length);
  putUInt32BE(buf, 12, payloadCrc);
  putUInt32BE(buf, 16, crc32Range(buf, 0, 16));
}

/** Header and payload in one buffer (one copy; fine for small messages). */
export function encodeFrame(payload: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const header = encodeFrameHeader(payload, maxFrameBytes);
  return Buffer.concat([header, payload], FRAME_HEADER_BYTES + payload.length);
}

/** A buffer lent for one received frame; release() gives it back (once). */
export interface ReceiveBuffer {
  readonly buf: Buffer;
  release(this: void): void;
}

/**
 * Where a big frame that arrived in several socket chunks is assembled. Without one every such
 * frame is a fresh allocation whose pages are faulted in and later collected (for 1 MiB file
 * writes, most of the reader's work).
 */
export interface ReceiveBufferSource {
  /** A buffer of at least `length` bytes. */
  acquire(length: number): ReceiveBuffer;
}

/** Frames smaller than this are joined into a fresh buffer (cheap, and from the small heap). */
export const POOLED_FRAME_MIN_BYTES = 64 * 1024;

export interface FrameDecoderOptions {
  maxFrameBytes?: number;
  onIssue?: (issue: FrameIssue) => void;
  /** Lends buffers for frames of POOLED_FRAME_MIN_BYTES and more that span socket chunks. */
  receiveBuffers?: ReceiveBufferSource;
}

export interface FrameDecoderStats {
  frames: number;
  skippedBytes: number;
  badFrames: number;
}

const enum State {
  Hunt,
  Header,
  Payload,
}

/**
 * Streaming frame reader (PROTOCOL.md §3). It never throws on input: garbage is skipped and
 * counted, false or damaged frames are dropped one byte at a time so that a real frame starting
 * inside them is still found, and a payload buffer is only assembled once its length has been
 * checked against maxFrameBytes and all of its bytes have arrived.
 */
export class FrameDecoder {
  private maxFrameBytesValue: number;
  readonly stats: FrameDecoderStats = { frames: 0, skippedBytes: 0, badFrames: 0 };
  private readonly onIssue: (issue: FrameIssue) => void;
  private readonly receiveBuffers: ReceiveBufferSource | undefined;
  /** Payloads held in a lent buffer, and how to give it back (takeReceiveBuffer). */
  private readonly lent = new LentBuffers<Buffer>();
  private chunks: Buffer[] = [];
  private total = 0;
  private state = State.Hunt;
  private payloadLength = 0;

  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < 1 || max > ABSOLUTE_MAX_FRAME_BYTES) {
      throw new RangeError(`maxFrameBytes must be an integer in 1..${ABSOLUTE_MAX_FRAME_BYTES}`);
    }
    this.maxFrameBytesValue = max;
    this.onIssue = options.onIssue ?? (() => undefined);
    this.receiveBuffers = options.receiveBuffers;
  }

  /**
   * The release of the lent buffer a payload returned by push() sits in, if it does (once; later
   * calls return undefined). Whoever takes it calls it when nothing reads the payload's bytes any
   * more (decoded messages' bytes fields are views of them); a release never called only costs
   * the pool that buffer.
   */
  takeReceiveBuffer(payload: Buffer): (() => void) | undefined {
    return this.lent.take(payload);
  }

  get maxFrameBytes(): number {
    return this.maxFrameBytesValue;
  }

  /** Raises or lowers the bound for frames not yet started (a peer announced its own). */
  set maxFrameBytes(max: number) {
    if (!Number.isInteger(max) || max < 1 || max > ABSOLUTE_MAX_FRAME_BYTES) {
      throw new RangeError(`maxFrameBytes must be an integer in 1..${ABSOLUTE_MAX_FRAME_BYTES}`);
    }
    this.maxFrameBytesValue = max;
  }

  /** True while bytes of an unfinished frame are buffered. */
  get hasPartialFrame(): boolean {
    return this.state !== State.Hunt;
  }

  get bufferedBytes(): number {
    return this.total;
  }

  /** Feeds bytes; returns the payloads of every complete, valid frame they finish. */
  push(chunk: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length === 0) {
      return out;
    }
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.chunks.push(buf);
    this.total += buf.length;
    this.drain(out);
    return out;
  }

  /**
   * Gives up on a frame whose remaining bytes never came (the writer vanished mid-frame): the
   * candidate header is dropped and the buffered bytes are rescanned. Returns any frames found.
   */
  abandonPartial(): Buffer[] {
    const out: Buffer[] = [];
    if (this.state === State.Hunt) {
      return out;
    }
    this.issue(
      'abandoned-partial',
      this.payloadLength,
      'partial frame abandoned after idle timeout',
    );
    this.dropBytes(1);
    this.state = State.Hunt;
    this.drain(out);
    return out;
  }

  /** Forgets everything buffered (new connection, end of stream). */
  reset(): void {
    this.chunks = [];
    this.total = 0;
    this.state = State.Hunt;
    this.payloadLength = 0;
  }

  private drain(out: Buffer[]): void {
    for (;;) {
      if (this.state === State.Hunt) {
        if (!this.hunt()) {
          return;
        }
      }
      if (this.state === State.Header) {
        if (this.total < FRAME_HEADER_BYTES) {
          return;
        }
        this.readHeader();
        continue;
      }
      if (this.state === State.Payload) {
        const frameBytes = FRAME_HEADER_BYTES + this.payloadLength;
        if (this.total < frameBytes) {
          return;
        }
        const lease = this.lease(frameBytes);
        const buf = lease?.buf ?? this.contiguous(frameBytes);
        const payload = buf.subarray(FRAME_HEADER_BYTES, frameBytes);
        if (crc32(payload) !== buf.readUInt32BE(12)) {
          lease?.release();
          this.issue('bad-payload-crc', this.payloadLength, 'payload CRC mismatch');
          this.dropBytes(1);
          this.state = State.Hunt;
          continue;
        }
        this.dropBytes(frameBytes);
        this.state = State.Hunt;
        this.stats.frames++;
        if (lease !== undefined) {
          this.lent.set(payload, lease.release);
        }
        out.push(payload);
      }
    }
  }

  /** Finds the magic; returns false when more bytes are needed. */
  private hunt(): boolean {
    if (this.total === 0) {
      return false;
    }
    const first = this.chunks[0]!;
    if (
      first.length >= FRAME_MAGIC.length &&
      first[0] === FRAME_MAGIC[0] &&
      first[1] === FRAME_MAGIC[1] &&
      first[2] === FRAME_MAGIC[2] &&
      first[3] === FRAME_MAGIC[3]
    ) {
      // The usual case, a frame right after the last: nothing to search or merge.
      this.state = State.Header;
      return true;
    }
    const buf = this.contiguous(this.total);
    const idx = buf.indexOf(FRAME_MAGIC);
    if (idx < 0) {
      // Keep a possible magic prefix at the end.
      const keep = Math.min(FRAME_MAGIC.length - 1, buf.length);
      const drop = buf.length - keep;
      if (drop > 0) {
        this.stats.skippedBytes += drop;
        this.issue('garbage', drop, `${drop} bytes without a frame magic skipped`);
        this.dropBytes(drop);
      }
      return false;
    }
    if (idx > 0) {
      this.stats.skippedBytes += idx;
      this.issue('garbage', idx, `${idx} bytes before a frame magic skipped`);
      this.dropBytes(idx);
    }
    this.state = State.Header;
    return true;
  }

  private readHeader(): void {
    const h = this.contiguous(FRAME_HEADER_BYTES);
    if (crc32Range(h, 0, 16) !== h.readUInt32BE(16)) {
      this.issue('bad-header-crc', 0, 'header CRC mismatch');
      this.dropBytes(1);
      this.state = State.Hunt;
      return;
    }
    const length = h.readUInt32BE(8);
    if (h[4] !== FRAME_VERSION || h[5] !== 0 || h.readUInt16BE(6) !== 0) {
      this.issue(
        'bad-header',
        length,
        `unsupported frame version ${h[4]} or non-zero reserved bits (flags ${h[5]})`,
      );
      this.dropBytes(1);
      this.state = State.Hunt;
      return;
    }
    if (length > this.maxFrameBytesValue) {
      this.issue(
        'too-large',
        length,
        `frame length ${length} exceeds max_frame_bytes ${this.maxFrameBytesValue}`,
      );
      this.dropBytes(1);
      this.state = State.Hunt;
      return;
    }
    this.payloadLength = length;
    this.state = State.Payload;
  }

  /**
   * A big frame spread over several chunks, copied into a lent buffer (the chunks stay, so a bad
   * CRC can still be rescanned byte by byte); undefined when it is small, already contiguous, or
   * there is no source.
   */
  private lease(n: number): ReceiveBuffer | undefined {
    if (
      this.receiveBuffers === undefined ||
      n < POOLED_FRAME_MIN_BYTES ||
      this.chunks[0]!.length >= n
    ) {
      return undefined;
    }
    const lease = this.receiveBuffers.acquire(n);
    let at = 0;
    for (const chunk of this.chunks) {
      const take = Math.min(chunk.length, n - at);
      lease.buf.set(take === chunk.length ? chunk : chunk.subarray(0, take), at);
      at += take;
      if (at === n) {
        break;
      }
    }
    return lease;
  }

  /**
   * Returns the first n buffered bytes as one buffer (or more: whole chunks), merging only the
   * chunks that hold them: a header split over two chunks does not copy the rest of a big frame.
   */
  private contiguous(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      return first;
    }
    let count = 1;
    let length = first.length;
    while (length < n) {
      length += this.chunks[count++]!.length;
    }
    const merged = Buffer.concat(this.chunks.slice(0, count), length);
    this.chunks.splice(0, count, merged);
    return merged;
  }

  private dropBytes(n: number): void {
    let left = n;
    while (left > 0) {
      const first = this.chunks[0]!;
      if (first.length <= left) {
        left -= first.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.total -= n;
  }

  private issue(kind: FrameIssueKind, bytes: number, detail: string): void {
    if (kind !== 'garbage') {
      this.stats.badFrames++;
    }
    this.onIssue({ kind, bytes, detail });
  }
}
