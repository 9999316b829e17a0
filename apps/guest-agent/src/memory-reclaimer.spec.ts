import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  ExecuteRequestSchema,
  ExecuteResponseSchema,
  FileReadResponseSchema,
  FileWriteRequestSchema,
  PingRequestSchema,
} from '@lq/proto';
import { MemoryReclaimer, v8FullGc, workBytes } from './memory-reclaimer.js';

const MiB = 1024 * 1024;

describe('MemoryReclaimer', () => {
  let collect: jest.Mock<() => void>;
  let reclaimer: MemoryReclaimer;

  beforeEach(() => {
    jest.useFakeTimers();
    collect = jest.fn<() => void>();
    reclaimer = new MemoryReclaimer({ afterBytes: 8 * MiB, idleMs: 500, collect });
  });
  afterEach(() => {
    reclaimer.close();
    jest.useRealTimers();
  });

  it('should collect once the agent has been idle for idleMs after heavy work', () => {
    reclaimer.begin();
    reclaimer.end(10 * MiB);
    jest.advanceTimersByTime(499);
    expect(collect).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(collect).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(10_000);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('should add up small pieces of work until they reach afterBytes', () => {
    for (let i = 0; i < 7; i++) {
      reclaimer.begin();
      reclaimer.end(MiB);
    }
    jest.advanceTimersByTime(5000);
    expect(collect).not.toHaveBeenCalled();
    reclaimer.begin();
    reclaimer.end(MiB);
    jest.advanceTimersByTime(500);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('should not collect while a request is in flight, and wait for idleMs after the last one', () => {
    reclaimer.begin();
    reclaimer.begin();
    reclaimer.end(16 * MiB);
    jest.advanceTimersByTime(5000);
    expect(collect).not.toHaveBeenCalled();
    reclaimer.end(0);
    jest.advanceTimersByTime(300);
    reclaimer.begin(); // a ping arrives: the idle time starts again when it ends
    reclaimer.end(0);
    jest.advanceTimersByTime(300);
    expect(collect).not.toHaveBeenCalled();
    jest.advanceTimersByTime(200);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('should never collect when afterBytes is 0', () => {
    const off = new MemoryReclaimer({ afterBytes: 0, idleMs: 10, collect });
    off.begin();
    off.end(1024 * MiB);
    jest.advanceTimersByTime(10_000);
    expect(collect).not.toHaveBeenCalled();
  });

  it('should drop a pending collection on close', () => {
    reclaimer.begin();
    reclaimer.end(10 * MiB);
    reclaimer.close();
    jest.advanceTimersByTime(10_000);
    expect(collect).not.toHaveBeenCalled();
  });
});

describe('workBytes', () => {
  it('should count file data in and out and all the output a command printed', () => {
    expect(
      workBytes(
        { case: 'fileWrite', value: create(FileWriteRequestSchema, { data: new Uint8Array(100) }) },
        undefined,
      ),
    ).toBe(100);
    expect(
      workBytes(
        { case: 'fileRead', value: {} as never },
        {
          case: 'fileReadResponse',
          value: create(FileReadResponseSchema, { data: new Uint8Array(70) }),
        },
      ),
    ).toBe(70);
    expect(
      workBytes(
        { case: 'execute', value: create(ExecuteRequestSchema, { stdin: new Uint8Array(5) }) },
        {
          case: 'executeResponse',
          // Capped at 1 MiB on the wire, 64 MiB drained.
          value: create(ExecuteResponseSchema, {
            stdout: new Uint8Array(10),
            stdoutTotalBytes: BigInt(64 * MiB),
            stderrTotalBytes: 3n,
          }),
        },
      ),
    ).toBe(5 + 64 * MiB + 3);
    expect(workBytes({ case: 'ping', value: create(PingRequestSchema) }, undefined)).toBe(0);
  });
});

describe('v8FullGc', () => {
  // About 15 MiB of small objects that live until it returns: old garbage once it has.
  function makeGarbage(): number {
    return Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` })).length;
  }

  it('should run a real collection that frees what is unreachable', () => {
    const { heapUsed } = process.memoryUsage();
    expect(makeGarbage()).toBe(200_000);
    expect(process.memoryUsage().heapUsed).toBeGreaterThan(heapUsed + 4 * MiB);
    v8FullGc();
    v8FullGc();
    expect(process.memoryUsage().heapUsed).toBeLessThan(heapUsed + 4 * MiB);
  });
});
