import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '../logger.js';
import { BufferPool } from './buffer-pool.js';
import { MemoryReclaimer } from './reclaimer.js';

const log = new Logger('silent');

describe('MemoryReclaimer', () => {
  it('should reclaim once idle after enough requests, dropping the pooled buffers', async () => {
    const pool = new BufferPool(64, 4);
    pool.acquire(1).release();
    const r = new MemoryReclaimer(20, [pool], log);
    for (let i = 0; i < 40; i++) {
      r.begin();
      r.end();
    }
    expect(r.active).toBe(0);
    await sleep(200);
    expect(r.stats.reclaims).toBe(1);
    expect(pool.idle).toBe(0);
  });

  it('should not reclaim while a request is in progress, nor after a few small ones', async () => {
    const r = new MemoryReclaimer(20, [], log);
    r.begin();
    r.end();
    await sleep(100);
    expect(r.stats.reclaims).toBe(0);
    for (let i = 0; i < 40; i++) {
      r.begin();
      r.end();
    }
    r.begin(); // still in progress
    await sleep(100);
    expect(r.stats.reclaims).toBe(0);
    r.end();
    await sleep(200);
    expect(r.stats.reclaims).toBe(1);
  });

  it('should reclaim after start-up once idle, not while the first request runs', async () => {
    const r = new MemoryReclaimer(500, [], log);
    r.afterStartup();
    expect(r.stats.reclaims).toBe(0);
    r.begin(); // the host's first request
    await sleep(400);
    expect(r.stats.reclaims).toBe(0);
    r.end();
    await sleep(1000);
    expect(r.stats.reclaims).toBe(1);
    // With idle reclaims off, the one after start-up still happens.
    const off = new MemoryReclaimer(0, [], log);
    off.afterStartup();
    expect(off.stats.reclaims).toBe(0);
    await sleep(600);
    expect(off.stats.reclaims).toBe(1);
  });

  it('should reclaim after one request that moved a megabyte, or after a cold path', async () => {
    const r = new MemoryReclaimer(20, [], log);
    r.begin();
    r.end(1024 * 1024);
    await sleep(200);
    expect(r.stats.reclaims).toBe(1);
    r.coldPathRan();
    await sleep(300);
    expect(r.stats.reclaims).toBe(2);
  });

  it('should never reclaim by itself with idle_reclaim_ms 0', async () => {
    const r = new MemoryReclaimer(0, [], log);
    r.begin();
    r.end(64 * 1024 * 1024);
    r.coldPathRan();
    await sleep(100);
    expect(r.stats.reclaims).toBe(0);
  });

  it('should collect at once, busy or not, when memory.collect_after_output_bytes were dropped', async () => {
    const pool = new BufferPool(64, 4);
    pool.acquire(1).release();
    // Idle reclaims an hour away: only the bulk collection can run within the test.
    const r = new MemoryReclaimer(3_600_000, [pool], log, 1000);
    r.begin();
    r.begin(); // another request stays in progress throughout
    r.end(5000, 600); // bytes moved count for the idle reclaim only
    await sleep(20);
    expect(r.stats.bulkCollections).toBe(0);
    r.begin();
    r.end(0, 600); // 1,200 bytes dropped since the start
    await sleep(20);
    // The pools stay (in use by whatever runs); the idle reclaim has not run.
    expect([r.stats.bulkCollections, r.stats.reclaims, pool.idle]).toEqual([1, 0, 1]);
    r.begin();
    r.end(0, 999); // counted afresh after the collection
    await sleep(20);
    expect(r.stats.bulkCollections).toBe(1);
    r.stop();
  });

  it('should never collect for dropped output when memory.collect_after_output_bytes is 0', async () => {
    const r = new MemoryReclaimer(3_600_000, [], log, 0);
    r.begin();
    r.end(0, 1024 * 1024 * 1024);
    await sleep(20);
    expect(r.stats.bulkCollections).toBe(0);
    r.stop();
  });
});
