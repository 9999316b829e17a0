import { describe, expect, it } from '@jest/globals';
import { BufferPool } from './buffer-pool.js';

describe('BufferPool', () => {
  it('should lend the same buffer again once released, and views of the asked length', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.acquire(100);
    expect(a.buf.length).toBe(100);
    a.buf.fill(7);
    a.release();
    const b = pool.acquire(1024);
    expect(b.buf.buffer).toBe(a.buf.buffer);
    expect(b.buf.byteOffset).toBe(a.buf.byteOffset);
    expect(pool.inUse).toBe(1);
    b.release();
    expect(pool.inUse).toBe(0);
  });

  it('should never lend one buffer twice at once', () => {
    const pool = new BufferPool(64, 4);
    const lent = Array.from({ length: 8 }, () => pool.acquire(64));
    const starts = new Set(
      lent.map((l) => `${l.buf.buffer.byteLength}:${l.buf.byteOffset}:${l.buf[0]}`),
    );
    lent.forEach((l, i) => l.buf.fill(i));
    lent.forEach((l, i) => expect(l.buf.every((b) => b === i)).toBe(true));
    expect(starts.size).toBeGreaterThan(0);
    expect(pool.inUse).toBe(8);
    lent.forEach((l) => l.release());
    // Only `keep` of them stay.
    expect(pool.idle).toBe(4);
  });

  it('should ignore a second release of the same loan', () => {
    const pool = new BufferPool(64, 4);
    const a = pool.acquire(10);
    a.release();
    a.release();
    expect(pool.inUse).toBe(0);
    expect(pool.idle).toBe(1);
    const b = pool.acquire(10);
    const c = pool.acquire(10);
    expect(b.buf.buffer).not.toBe(c.buf.buffer);
  });

  it('should give a buffer of its own for a request above the size, or with keep 0', () => {
    const pool = new BufferPool(64, 4);
    const big = pool.acquire(65);
    expect(big.buf.length).toBe(65);
    big.release();
    expect(pool.idle).toBe(0);
    const off = new BufferPool(64, 0);
    off.acquire(10).release();
    expect(off.idle).toBe(0);
  });

  it('should drop its free buffers when drained', () => {
    const pool = new BufferPool(64, 4);
    const a = pool.acquire(1);
    const b = pool.acquire(1);
    a.release();
    pool.drain();
    expect(pool.idle).toBe(0);
    b.release(); // lent during the drain: kept again afterwards
    expect(pool.idle).toBe(1);
  });
});
