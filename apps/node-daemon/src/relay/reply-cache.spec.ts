import { describe, expect, it } from '@jest/globals';
import type { GuestResponse } from '@lq/proto';
import { ReplyCache } from './reply-cache.js';

const result = (n: number) =>
  ({ case: 'ping', value: { n } }) as unknown as GuestResponse['result'];

describe('ReplyCache', () => {
  it('should answer a relayed result by VM and request id until it expires', () => {
    let now = 0;
    const cache = new ReplyCache(1000, 1 << 20, () => now);
    cache.put('vm-1', 'r1', result(1), 10);
    expect(cache.get('vm-1', 'r1')).toEqual(result(1));
    expect(cache.get('vm-2', 'r1')).toBeUndefined();
    now = 1000;
    expect(cache.get('vm-1', 'r1')).toBeUndefined();
    expect(cache.retainedBytes).toBe(0);
  });

  it('should drop the oldest results when over its byte bound', () => {
    const cache = new ReplyCache(60_000, 100);
    cache.put('vm', 'a', result(1), 60);
    cache.put('vm', 'b', result(2), 30);
    cache.put('vm', 'c', result(3), 30);
    expect(cache.get('vm', 'a')).toBeUndefined();
    expect(cache.get('vm', 'b')).toBeDefined();
    expect(cache.get('vm', 'c')).toBeDefined();
    expect(cache.retainedBytes).toBe(60);
  });

  it('should keep nothing larger than its bound, nor anything when retention is 0', () => {
    const big = new ReplyCache(60_000, 100);
    big.put('vm', 'a', result(1), 101);
    expect(big.size).toBe(0);
    const off = new ReplyCache(0, 100);
    off.put('vm', 'a', result(1), 1);
    expect(off.size).toBe(0);
  });
});
