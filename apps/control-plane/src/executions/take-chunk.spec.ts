import { describe, expect, it, jest } from '@jest/globals';
import { takesChunk } from './execution-driver.js';

describe('takesChunk', () => {
  it('should take the next chunk from either source without asking for a replay', () => {
    const replay = jest.fn(() => true);
    expect(takesChunk(0, 1, 'core', replay)).toBe(true);
    expect(takesChunk(4, 5, 'stream', replay)).toBe(true);
    expect(replay).not.toHaveBeenCalled();
  });

  it('should drop a chunk taken before (the stream replaying what core delivered)', () => {
    const replay = jest.fn(() => true);
    expect(takesChunk(5, 5, 'stream', replay)).toBe(false);
    expect(takesChunk(5, 2, 'core', replay)).toBe(false);
    expect(replay).not.toHaveBeenCalled();
  });

  it('should replay the stream and drop the chunk when core skipped some', () => {
    const replay = jest.fn(() => true);
    expect(takesChunk(2, 5, 'core', replay)).toBe(false);
    expect(replay).toHaveBeenCalledTimes(1);
  });

  it('should take a chunk after a gap when there is no stream to replay, or over the stream', () => {
    expect(takesChunk(2, 5, 'core', () => false)).toBe(true);
    const replay = jest.fn(() => true);
    expect(takesChunk(2, 5, 'stream', replay)).toBe(true);
    expect(replay).not.toHaveBeenCalled();
  });
});
