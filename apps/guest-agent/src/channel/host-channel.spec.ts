import { describe, expect, it } from '@jest/globals';
import { COALESCE_MAX_BYTES, coalesceSmallFrame } from './host-channel.js';

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
