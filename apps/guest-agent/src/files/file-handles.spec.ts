import { describe, expect, it, jest } from '@jest/globals';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ErrorCode, type FileLimits } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import { FileHandleTable, limitsKeyOf } from './file-handles.js';

function fakeFile() {
  const close = jest.fn(() => Promise.resolve());
  return { handle: { close } as unknown as FileHandle, close, local: true };
}

const stat = { size: 10, mode: 0o100644, mtimeMs: 0 } as Stats;
const limits = (roots: string[]) => ({ roots, noSetid: false }) as FileLimits;

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
    return undefined;
  } catch (err) {
    return ErrorCode[(err as AgentOpError).code];
  }
}

describe('FileHandleTable', () => {
  it('should refuse a place past maxOpen, counting opens under way, until one is given back', async () => {
    const table = new FileHandleTable({ maxOpen: 2, idleTimeoutMs: 60_000 });
    const first = table.reserve();
    const a = table.add(first, { path: '/a', stat, ...fakeFile() }, undefined);
    const pending = table.reserve();
    expect(await codeOf(() => table.reserve())).toBe('BUSY');
    pending(); // the open failed
    pending(); // giving back twice changes nothing
    const b = table.add(table.reserve(), { path: '/b', stat, ...fakeFile() }, undefined);
    expect(await codeOf(() => table.reserve())).toBe('BUSY');
    expect(await table.close(a.id)).toBe(true);
    expect(table.size).toBe(1);
    table.reserve();
    await table.closeAll();
    expect(b.id).not.toBe(a.id);
  });

  it('should answer NOT_FOUND for an unknown handle and NOT_ALLOWED under other limits', async () => {
    const table = new FileHandleTable({ maxOpen: 4, idleTimeoutMs: 60_000 });
    const f = fakeFile();
    const file = table.add(table.reserve(), { path: '/r/a', stat, ...f }, limits(['/r']));
    expect(await codeOf(table.use(file.id + 1n, limits(['/r']), async () => 1))).toBe('NOT_FOUND');
    expect(await codeOf(table.use(file.id, undefined, async () => 1))).toBe('NOT_ALLOWED');
    expect(await codeOf(table.closeFor(file.id, limits(['/other'])))).toBe('NOT_ALLOWED');
    await expect(table.use(file.id, limits(['/r']), async () => 7)).resolves.toBe(7);
    await expect(table.closeFor(file.id, limits(['/r']))).resolves.toBe(true);
    expect(f.close).toHaveBeenCalledTimes(1);
    await expect(table.closeFor(file.id, limits(['/r']))).resolves.toBe(false);
  });

  it('should close a handle after its idle time, counted from its last use', async () => {
    jest.useFakeTimers();
    try {
      const table = new FileHandleTable({ maxOpen: 4, idleTimeoutMs: 1000 });
      const f = fakeFile();
      const file = table.add(table.reserve(), { path: '/a', stat, ...f }, undefined);
      jest.advanceTimersByTime(900);
      await table.use(file.id, undefined, async () => undefined);
      jest.advanceTimersByTime(900);
      expect(table.size).toBe(1);
      jest.advanceTimersByTime(200);
      await Promise.resolve();
      expect(table.size).toBe(0);
      expect(await codeOf(table.use(file.id, undefined, async () => 1))).toBe('NOT_FOUND');
    } finally {
      jest.useRealTimers();
    }
  });

  it('should close the file only once the reads under way on it are done', async () => {
    const table = new FileHandleTable({ maxOpen: 4, idleTimeoutMs: 60_000 });
    const f = fakeFile();
    const file = table.add(table.reserve(), { path: '/a', stat, ...f }, undefined);
    let finish!: () => void;
    const reading = table.use(file.id, undefined, () => new Promise<void>((r) => (finish = r)));
    const closing = table.close(file.id);
    await Promise.resolve();
    expect(f.close).not.toHaveBeenCalled();
    finish();
    await reading;
    await expect(closing).resolves.toBe(true);
    expect(f.close).toHaveBeenCalledTimes(1);
  });

  it('should key limits by their roots, in any order', () => {
    expect(limitsKeyOf(undefined)).toBe('');
    expect(limitsKeyOf(limits([]))).toBe('');
    expect(limitsKeyOf(limits(['/b', '/a']))).toBe(limitsKeyOf(limits(['/a', '/b'])));
  });
});
