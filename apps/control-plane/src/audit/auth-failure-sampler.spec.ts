import { describe, expect, it } from '@jest/globals';
import { AuthFailureSampler } from './auth-failure-sampler.js';

describe('AuthFailureSampler', () => {
  it('should write a bounded number per address and in all, and count the rest per address', () => {
    const s = new AuthFailureSampler({ perAddress: 2, total: 3 });
    const flushed: Array<[string, number]> = [];
    const flush = (c: Array<[string, number]>) => flushed.push(...c);
    const t = 60_000 * 100;
    const admitted = ['a', 'a', 'a', 'b', 'b', 'c'].map((addr) => s.admit(addr, t, flush));
    expect(admitted).toEqual([true, true, false, true, false, false]);
    expect(flushed).toEqual([]);
    s.roll(t + 60_000, flush);
    expect(flushed.sort()).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    expect(s.admit('a', t + 60_000, flush)).toBe(true);
  });

  it('should fold addresses beyond its table into one entry', () => {
    const s = new AuthFailureSampler({ perAddress: 0, total: 0 }, 2);
    const flushed: Array<[string, number]> = [];
    for (const a of ['a', 'b', 'c', 'd']) {
      s.admit(a, 0, () => undefined);
    }
    s.roll(60_000, (c) => flushed.push(...c));
    expect(Object.fromEntries(flushed)).toEqual({ a: 1, b: 1, '(many)': 2 });
  });
});
