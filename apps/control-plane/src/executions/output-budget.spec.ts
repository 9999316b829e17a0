import { describe, expect, it } from '@jest/globals';
import type { OutputChunk } from './executions.repository.js';
import { OutputBudget } from './output-budget.js';

const chunk = (seq: number, bytes: number): OutputChunk => ({
  seq,
  stream: 'stdout',
  data: Buffer.alloc(bytes, 120),
  droppedBytes: 0,
});

describe('OutputBudget', () => {
  it('should keep chunks whole until the per-execution cap, cut the one that crosses it, and flag it', () => {
    const b = new OutputBudget(250, 1000);
    const kept = [b.admit(chunk(1, 100)), b.admit(chunk(2, 100)), b.admit(chunk(3, 100))];
    expect(kept.map((c) => c?.data.length)).toEqual([100, 100, 50]);
    expect(b.truncated).toBe(true);
    b.wrote(kept.map((c) => c!));
    expect(b.admit(chunk(4, 1))).toBeUndefined();
  });

  it('should leave out what the memory bound cannot hold while the store lags, and take more once stored', () => {
    const b = new OutputBudget(10_000, 150);
    const first = b.admit(chunk(1, 100))!;
    expect(b.admit(chunk(2, 100))?.data.length).toBe(50);
    expect(b.admit(chunk(3, 10))).toBeUndefined();
    expect(b.truncated).toBe(true);
    b.wrote([first]);
    expect(b.admit(chunk(4, 100))?.data.length).toBe(100);
  });

  it('should not flag output within its bounds', () => {
    const b = new OutputBudget(300, 300);
    const c = b.admit(chunk(1, 300))!;
    b.wrote([c]);
    expect(b.truncated).toBe(false);
  });

  it('should flag output that never arrived (fewer bytes admitted than the command wrote)', () => {
    const b = new OutputBudget(10_000, 10_000);
    b.saw(100);
    b.wrote([b.admit(chunk(1, 100))!]);
    b.settle(100);
    expect(b.truncated).toBe(false);
    b.settle(300);
    expect(b.truncated).toBe(true);
  });
});
