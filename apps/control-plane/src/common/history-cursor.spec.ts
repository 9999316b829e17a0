import { describe, expect, it } from '@jest/globals';
import { decodeCursor, encodeCursor, nextCursor } from './history-cursor.js';

describe('history cursor', () => {
  const c = { at: '2026-12-04 23:46:24.123456+00', id: '3f0c1a52-8a54-4c2e-9d7e-0c5b1f3a9e11' };

  it('should round-trip a cursor it made', () => {
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
  });

  it('should refuse text it did not make when it is not a cursor', () => {
    for (const bad of ['', 'abc', '12345', encodeCursor({ at: 'now', id: c.id }), 'a b']) {
      expect(decodeCursor(bad)).toBeUndefined();
    }
    expect(decodeCursor(Buffer.from(`${c.at}|${c.id}|x`).toString('base64url'))).toBeUndefined();
  });

  it('should give a next cursor only when the page was full', () => {
    const rows = [{ cursor_at: c.at, id: c.id }];
    expect(nextCursor(rows, 2)).toBeNull();
    expect(decodeCursor(nextCursor(rows, 1)!)).toEqual(c);
  });
});
