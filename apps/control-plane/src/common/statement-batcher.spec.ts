import { StatementBatcher } from './statement-batcher.js';

describe('StatementBatcher', () => {
  it('writes a row alone at once, and rows given while a batch is written together next', async () => {
    const batches: number[][] = [];
    const b = new StatementBatcher<number, number>(async (rows) => {
      batches.push(rows);
      await new Promise((r) => setTimeout(r, 10));
      return rows.map((r) => r * 2);
    }, 3);
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => b.push(n)));
    expect(results).toEqual([2, 4, 6, 8, 10]);
    expect(batches).toEqual([[1], [2, 3, 4], [5]]);
  });

  it('writes a batch refused for a row content again row by row: only that row fails', async () => {
    const b = new StatementBatcher<number, number>(async (rows) => {
      await Promise.resolve();
      if (rows.includes(3)) {
        throw Object.assign(new Error('bad row'), { code: '23514' });
      }
      return rows;
    }, 10);
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => b.push(n)));
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
  });

  it('fails the whole batch at once when the store is away (no row-by-row retries)', async () => {
    let writes = 0;
    const b = new StatementBatcher<number, number>(async () => {
      writes++;
      await Promise.resolve();
      throw new Error('timeout exceeded when trying to connect');
    }, 10);
    const results = await Promise.allSettled([1, 2, 3].map((n) => b.push(n)));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(writes).toBe(2);
  });

  it('refuses a batch size that is not a whole number ≥ 1', () => {
    expect(() => new StatementBatcher(async (r) => r, 0)).toThrow(/maxBatch/);
  });
});
