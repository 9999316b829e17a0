import { describe, expect, it } from '@jest/globals';
import { COALESCE_MAX_BYTES, coalesceSmallFrame, smallRunsJoined } from './host-channel.js';

describe('coalesceSmallFrame', () => {
  it('should join the parts of a small frame into one buffer, in order', () => {
    const parts = [Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4, 5, 6)];
    const out = coalesceSmallFrame(parts);
    expect(out).toHaveLength(1);
    expect([...out[0]!]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('should keep the parts of a frame larger than the bound, and a single part', () => {
    const big = [new Uint8Array(20), new Uint8Array(COALESCE_MAX_BYTES)];
    expect(coalesceSmallFrame(big)).toBe(big);
    const one = [Uint8Array.of(1)];
    expect(coalesceSmallFrame(one)).toBe(one);
  });
});

describe('smallRunsJoined', () => {
  it('should join each run of small parts and keep large parts as they are', () => {
    const stdout = new Uint8Array(100_000).fill(7);
    const stderr = new Uint8Array(50_000).fill(8);
    const parts = [Uint8Array.of(1), Uint8Array.of(2, 3), stdout, Uint8Array.of(4), stderr];
    const out = smallRunsJoined(parts);
    expect(out).toHaveLength(4);
    expect([...out[0]!]).toEqual([1, 2, 3]);
    expect(out[1]).toBe(stdout);
    expect([...out[2]!]).toEqual([4]);
    expect(out[3]).toBe(stderr);
    expect(Buffer.concat(out)).toEqual(Buffer.concat(parts));
  });

  it('should leave a lone small part and an all-large frame untouched', () => {
    const small = Uint8Array.of(9);
    expect(smallRunsJoined([small])[0]).toBe(small);
    const big = [new Uint8Array(COALESCE_MAX_BYTES), new Uint8Array(COALESCE_MAX_BYTES)];
    expect(smallRunsJoined(big)).toEqual(big);
  });
});
