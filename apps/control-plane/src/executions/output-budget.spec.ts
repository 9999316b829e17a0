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

  it('should ask a reader to wait when only the memory bound is full, not at the stored bound', () => {
    const b = new OutputBudget(1_000, 150);
    expect(b.mustWait(100)).toBe(false);
    const first = b.admit(chunk(1, 100))!;
    expect(b.mustWait(100)).toBe(true);
    expect(b.mustWait(50)).toBe(false);
    b.wrote([first]);
    expect(b.mustWait(100)).toBe(false);
    // A chunk larger than the whole buffer is not waited for forever: an empty buffer takes it.
    expect(b.mustWait(500)).toBe(false);
    // At the stored bound there is nothing to wait for: the rest is cut.
    const full = new OutputBudget(150, 150);
    full.admit(chunk(1, 150));
    expect(full.mustWait(10)).toBe(false);
  });

  it('should take a chunk whole once its reader made room, cut only at the stored bound', () => {
    const b = new OutputBudget(300, 150);
    b.admit(chunk(1, 100));
    // Redaction released held bytes: the chunk is longer than the room made for it.
    expect(b.admit(chunk(2, 120), true)?.data.length).toBe(120);
    expect(b.truncated).toBe(false);
    expect(b.admit(chunk(3, 120), true)?.data.length).toBe(80);
    expect(b.truncated).toBe(true);
  });
});
