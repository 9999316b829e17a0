import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import {
  FRAME_HEADER_BYTES,
  FRAME_MAGIC,
  FrameDecoder,
  FrameTooLargeError,
  type FrameIssue,
  POOLED_FRAME_MIN_BYTES,
  type ReceiveBufferSource,
  encodeFrame,
} from './frame-codec.js';
import { crc32, crc32Js, crc32Range } from './crc32.js';

function headerWithLength(length: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  FRAME_MAGIC.copy(h, 0);
  h[4] = 1;
  h.writeUInt32BE(length, 8);
  h.writeUInt32BE(0, 12);
  h.writeUInt32BE(crc32(h.subarray(0, 16)), 16);
  return h;
}

describe('crc32', () => {
  it('should match the zlib check value and the JS fallback', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = randomBytes(4097);
    expect(crc32Js(data)).toBe(crc32(data));
  });

  it('should give the CRC of a range as of the same bytes on their own', () => {
    const data = randomBytes(10_000);
    for (const [start, end] of [
      [0, 16],
      [3, 3],
      [20, 4000],
      [20, 9000],
      [0, 10_000],
    ] as const) {
      expect(crc32Range(data, start, end)).toBe(crc32(data.subarray(start, end)));
      expect(crc32Range(data, start, end, 0x1234)).toBe(crc32(data.subarray(start, end), 0x1234));
    }
  });
});

describe('FrameDecoder', () => {
  it('should round-trip frames fed in one chunk and byte by byte', () => {
    const payloads = [Buffer.alloc(0), Buffer.from('hello'), randomBytes(70_000)];
    const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
    const whole = new FrameDecoder().push(stream);
    expect(whole).toEqual(payloads);

    const dec = new FrameDecoder();
    const got: Buffer[] = [];
    for (const byte of stream) {
      got.push(...dec.push(Buffer.from([byte])));
    }
    expect(got).toEqual(payloads);
    expect(dec.stats.frames).toBe(3);
    expect(dec.bufferedBytes).toBe(0);
  });

  it('should skip random garbage and find the next frame when garbage precedes it', () => {
    const issues: FrameIssue[] = [];
    const dec = new FrameDecoder({ onIssue: (i) => issues.push(i) });
    const garbage = randomBytes(1024 * 1024);
    const got = [...dec.push(garbage), ...dec.push(encodeFrame(Buffer.from('after-garbage')))];
    expect(got.map(String)).toEqual(['after-garbage']);
    expect(dec.stats.skippedBytes).toBeGreaterThan(1024 * 1024 - 100);
    expect(issues.some((i) => i.kind === 'garbage')).toBe(true);
  });

  it('should refuse a 4 GiB length before allocating and resync on the next frame', () => {
    const issues: FrameIssue[] = [];
    const dec = new FrameDecoder({ maxFrameBytes: 1024, onIssue: (i) => issues.push(i) });
    const got = dec.push(
      Buffer.concat([headerWithLength(0xffffffff), encodeFrame(Buffer.from('ok'))]),
    );
    expect(got.map(String)).toEqual(['ok']);
    expect(issues.find((i) => i.kind === 'too-large')?.bytes).toBe(0xffffffff);
  });

  it('should reject a header whose CRC is wrong without waiting for its length', () => {
    const h = headerWithLength(1000);
    h.writeUInt8(h.readUInt8(16) ^ 0xff, 16);
    const dec = new FrameDecoder();
    const got = dec.push(Buffer.concat([h, encodeFrame(Buffer.from('next'))]));
    expect(got.map(String)).toEqual(['next']);
    expect(dec.hasPartialFrame).toBe(false);
  });

  it('should recover the frame that follows a half frame when the partial one is abandoned', () => {
    const dec = new FrameDecoder();
    const big = encodeFrame(randomBytes(10_000));
    expect(dec.push(big.subarray(0, 5000))).toEqual([]);
    expect(dec.hasPartialFrame).toBe(true);
    // The new writer's frame arrives and is swallowed as payload of the old one...
    expect(dec.push(encodeFrame(Buffer.from('sync')))).toEqual([]);
    // ...until the idle timeout abandons the partial frame and rescans.
    expect(dec.abandonPartial().map(String)).toEqual(['sync']);
    expect(dec.hasPartialFrame).toBe(false);
  });

  it('should rescan inside a frame whose payload CRC fails', () => {
    const dec = new FrameDecoder();
    const inner = encodeFrame(Buffer.from('inner'));
    // A header claiming exactly inner.length bytes, with a wrong payload CRC.
    const fake = headerWithLength(inner.length);
    const got = dec.push(Buffer.concat([fake, inner]));
    expect(got.map(String)).toEqual(['inner']);
    expect(dec.stats.badFrames).toBe(1);
  });

  it('should refuse to encode a payload larger than the maximum', () => {
    expect(() => encodeFrame(Buffer.alloc(11), 10)).toThrow(FrameTooLargeError);
  });

  it('should drop reserved-bit frames', () => {
    const f = encodeFrame(Buffer.from('x'));
    f[5] = 1;
    f.writeUInt32BE(crc32(f.subarray(0, 16)), 16);
    const dec = new FrameDecoder();
    expect(dec.push(Buffer.concat([f, encodeFrame(Buffer.from('y'))])).map(String)).toEqual(['y']);
  });

  describe('with lent receive buffers', () => {
    /** A source that lends one reusable buffer at a time, counting loans and returns. */
    function source(): ReceiveBufferSource & { acquired: number[]; released: number; out: number } {
      const spare = Buffer.alloc(2 * 1024 * 1024);
      const src = {
        acquired: [] as number[],
        released: 0,
        out: 0,
        acquire(length: number) {
          src.acquired.push(length);
          src.out++;
          let back = false;
          return {
            buf: spare,
            release: () => {
              if (!back) {
                back = true;
                src.released++;
                src.out--;
              }
            },
          };
        },
      };
      return src;
    }
    const feed = (dec: FrameDecoder, bytes: Buffer, chunk: number): Buffer[] => {
      const out: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += chunk) {
        out.push(...dec.push(Buffer.from(bytes.subarray(i, i + chunk))));
      }
      return out;
    };

    it('should assemble a big frame spread over chunks in a lent buffer, released once', () => {
      const src = source();
      const dec = new FrameDecoder({ receiveBuffers: src });
      const payload = randomBytes(1024 * 1024);
      const [got] = feed(dec, encodeFrame(payload), 65536);
      expect(got!.equals(payload)).toBe(true);
      expect(src.acquired).toEqual([FRAME_HEADER_BYTES + payload.length]);
      const release = dec.takeReceiveBuffer(got!);
      expect(release).toBeDefined();
      expect(dec.takeReceiveBuffer(got!)).toBeUndefined();
      release!();
      expect(src.out).toBe(0);
    });

    it('should lend nothing for a small frame or a frame that arrived in one chunk', () => {
      const src = source();
      const dec = new FrameDecoder({ receiveBuffers: src });
      const small = randomBytes(POOLED_FRAME_MIN_BYTES - FRAME_HEADER_BYTES - 1);
      const whole = randomBytes(256 * 1024);
      const got = [...feed(dec, encodeFrame(small), 4096), ...dec.push(encodeFrame(whole))];
      expect(got.map((b) => b.length)).toEqual([small.length, whole.length]);
      expect(got.map((b) => dec.takeReceiveBuffer(b))).toEqual([undefined, undefined]);
      expect(src.acquired).toEqual([]);
    });

    it('should give the buffer back and rescan when the payload CRC fails', () => {
      const src = source();
      const dec = new FrameDecoder({ receiveBuffers: src });
      const inner = encodeFrame(randomBytes(200 * 1024));
      // A header claiming exactly inner.length bytes, with a wrong payload CRC.
      const got = feed(dec, Buffer.concat([headerWithLength(inner.length), inner]), 65536);
      expect(got).toHaveLength(1);
      expect(got[0]!.equals(inner.subarray(FRAME_HEADER_BYTES))).toBe(true);
      expect(dec.stats.badFrames).toBe(1);
      // The bad frame's loan came back at once (the rescan then found the inner frame in the
      // bytes it had joined: no loan for it).
      expect([src.acquired.length, src.released, src.out]).toEqual([1, 1, 0]);
    });

    it('should keep each frame its own bytes when several big frames arrive in one push', () => {
      const pool: Buffer[] = [];
      const dec = new FrameDecoder({
        receiveBuffers: {
          acquire: (length) => {
            const buf = pool.pop() ?? Buffer.alloc(length);
            return { buf, release: () => pool.push(buf) };
          },
        },
      });
      const a = randomBytes(100 * 1024);
      const b = randomBytes(100 * 1024);
      const both = Buffer.concat([encodeFrame(a), encodeFrame(b)]);
      const got = [...dec.push(both.subarray(0, 1000)), ...dec.push(both.subarray(1000))];
      expect(got.map((g, i) => g.equals([a, b][i]!))).toEqual([true, true]);
    });
  });
});
