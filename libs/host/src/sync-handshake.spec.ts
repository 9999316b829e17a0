import { describe, expect, it, jest } from '@jest/globals';
import { SyncHandshake } from './sync-handshake.js';

describe('SyncHandshake', () => {
  it('should retry with a doubling wait up to the maximum until answered', () => {
    jest.useFakeTimers();
    try {
      let retries = 0;
      const h = new SyncHandshake({ initialMs: 100, maxMs: 300 }, () => {
        retries++;
        h.next();
      });
      h.next();
      jest.advanceTimersByTime(99);
      expect(retries).toBe(0);
      jest.advanceTimersByTime(1); // 100
      expect(retries).toBe(1);
      jest.advanceTimersByTime(200); // 200
      expect(retries).toBe(2);
      jest.advanceTimersByTime(300); // capped at 300
      expect(retries).toBe(3);
      jest.advanceTimersByTime(300);
      expect(retries).toBe(4);
      h.stop();
    } finally {
      jest.useRealTimers();
    }
  });

  it('should accept only the nonce of the attempt under way, once', () => {
    jest.useFakeTimers();
    try {
      let retries = 0;
      const h = new SyncHandshake({ initialMs: 100, maxMs: 800 }, () => retries++);
      const first = h.next();
      const second = h.next();
      expect(h.answer(first)).toBe(false);
      expect(h.answer(second)).toBe(true);
      expect(h.answer(second)).toBe(false);
      jest.advanceTimersByTime(10_000);
      expect(retries).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});
