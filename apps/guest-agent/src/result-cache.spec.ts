import { describe, expect, it } from '@jest/globals';
import type { AgentPayload } from '@lq/proto';
import { ResultCache } from './result-cache.js';

const pong: AgentPayload = { case: 'pong', value: {} as never };
const size = () => 100;

describe('ResultCache', () => {
  it('should hand out the running work, then the finished result, for the same id', async () => {
    const cache = new ResultCache(1000, 10_000);
    let finish!: (p: AgentPayload) => void;
    const work = new Promise<AgentPayload>((resolve) => (finish = resolve));
    cache.track('a', work, size);
    expect(cache.get('a')).toBe(work);
    finish(pong);
    await work;
    await Promise.resolve();
    expect(await cache.get('a')).toBe(pong);
    expect(cache.retainedBytes).toBe(100);
  });

  it('should free a result when the host acks it', async () => {
    const cache = new ResultCache(1000, 10_000);
    cache.track('a', Promise.resolve(pong), size);
    await Promise.resolve();
    await Promise.resolve();
    cache.ack(['a']);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.retainedBytes).toBe(0);
  });

  it('should not retain failures', async () => {
    const cache = new ResultCache(1000, 10_000);
    const failed = Promise.reject(new Error('x'));
    failed.catch(() => undefined);
    cache.track('a', failed, size);
    await failed.catch(() => undefined);
    await Promise.resolve();
    expect(cache.get('a')).toBeUndefined();
  });

  it('should drop results after the retention time and oldest first past the byte bound', async () => {
    let now = 0;
    const cache = new ResultCache(1000, 250, () => now);
    for (const id of ['a', 'b', 'c']) {
      cache.track(id, Promise.resolve(pong), size);
      await Promise.resolve();
      await Promise.resolve();
    }
    expect(cache.get('a')).toBeUndefined();
    expect(cache.retainedBytes).toBe(200);
    now = 2000;
    cache.sweep();
    expect(cache.size).toBe(0);
  });
});
