import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { HelperThreads } from './helper-threads.js';

describe('HelperThreads', () => {
  let dir: string;
  const thread = (tid: number, name: string) => {
    mkdirSync(join(dir, String(tid)));
    writeFileSync(join(dir, String(tid), 'comm'), `${name}\n`);
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-helper-threads-'));
    thread(100, 'limiquantix-age');
    thread(101, 'JITWorker');
    thread(102, 'JITWorker');
    thread(103, 'mi-scavenger');
    thread(104, 'JSCWarmUp');
    thread(105, 'Bun Pool 0');
    thread(106, 'HeapHelper');
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('should lower the runtime helpers only, each once, and those started later', () => {
    const calls: Array<[number, number]> = [];
    const helpers = new HelperThreads(19, undefined, {
      taskDir: dir,
      platform: 'linux',
      setPriority: (tid, nice) => calls.push([tid, nice]),
    });
    expect(helpers.apply()).toBe(4);
    // Not the main thread, the thread pool (requests' I/O) or the collector's helpers.
    expect(calls.sort()).toEqual([
      [101, 19],
      [102, 19],
      [103, 19],
      [104, 19],
    ]);
    expect(helpers.apply()).toBe(0);
    thread(107, 'JITWorker');
    expect(helpers.apply()).toBe(1);
    expect(calls.at(-1)).toEqual([107, 19]);
  });

  it('should leave the threads alone at 0, off Linux, and go on past a thread it cannot lower', () => {
    const calls: number[] = [];
    const setPriority = (tid: number) => {
      calls.push(tid);
      if (tid === 101) {
        throw new Error('ESRCH: no such thread');
      }
    };
    expect(
      new HelperThreads(0, undefined, { taskDir: dir, platform: 'linux', setPriority }).apply(),
    ).toBe(0);
    expect(
      new HelperThreads(19, undefined, { taskDir: dir, platform: 'win32', setPriority }).apply(),
    ).toBe(0);
    expect(calls).toEqual([]);
    const helpers = new HelperThreads(10, undefined, {
      taskDir: dir,
      platform: 'linux',
      setPriority,
    });
    expect(helpers.apply()).toBe(3);
    expect(calls.sort()).toEqual([101, 102, 103, 104]);
    // Not retried.
    expect(helpers.apply()).toBe(0);
    expect(
      new HelperThreads(19, undefined, {
        taskDir: join(dir, 'gone'),
        platform: 'linux',
        setPriority,
      }).apply(),
    ).toBe(0);
  });
});
