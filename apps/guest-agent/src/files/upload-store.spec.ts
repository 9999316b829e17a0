import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode } from '@lq/proto';
import { UploadStore, uploadTempPath, type UploadChunk } from './upload-store.js';

const isRoot = process.getuid?.() === 0;

describe('UploadStore', () => {
  let dir: string;
  let target: string;
  let store: UploadStore;

  function chunk(offset: number, text: string, more: Partial<UploadChunk> = {}): UploadChunk {
    return {
      uploadId: 'up-1',
      path: target,
      offset,
      data: Buffer.from(text),
      commit: false,
      ...more,
    };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lq-upload-'));
    target = join(dir, 'target.txt');
    store = new UploadStore({ upload_idle_timeout_ms: 60_000, max_uploads: 4 });
  });

  afterEach(async () => {
    await store.closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('should name the temp file beside the target when an upload starts', () => {
    expect(uploadTempPath('/a/b/file.bin', 'u1')).toBe('/a/b/.file.bin.lq-upload-u1');
    const long = uploadTempPath(`/a/${'x'.repeat(255)}`, 'u'.repeat(64));
    expect(Buffer.byteLength(long.slice(3))).toBeLessThanOrEqual(255);
  });

  it('should leave the target unchanged until commit when chunks arrive out of order', async () => {
    await writeFile(target, 'old content');
    const results = await Promise.all([
      store.write(chunk(10, 'KLMNO')),
      store.write(chunk(5, 'FGHIJ')),
      store.write(chunk(15, 'PQRST')),
    ]);
    expect(results.every((r) => !r.committed && r.bytesWritten === 5)).toBe(true);
    expect(await readFile(target, 'utf8')).toBe('old content');
    const temp = uploadTempPath(target, 'up-1');
    expect((await stat(temp)).mode & 0o777).toBe(0o600);

    const done = await store.write(chunk(0, 'ABCDE', { commit: true }));
    expect(done).toEqual({ bytesWritten: 5, size: 20, committed: true });
    expect(await readFile(target, 'utf8')).toBe('ABCDEFGHIJKLMNOPQRST');
    expect(await readdir(dir)).toEqual(['target.txt']);
    expect(store.openUploads).toBe(0);
  });

  it('should wait for chunks in flight when the commit arrives with them', async () => {
    const big = 'z'.repeat(256 * 1024);
    const writes = [1, 2, 3, 4].map((i) => store.write(chunk(i * big.length, big)));
    const commit = store.write(chunk(0, big, { commit: true }));
    await Promise.all(writes);
    expect(await commit).toMatchObject({ committed: true, size: 5 * big.length });
    expect((await stat(target)).size).toBe(5 * big.length);
  });

  it('should create the file with mode 0644 when the target is new and no mode is given', async () => {
    await store.write(chunk(0, 'data', { commit: true }));
    expect((await stat(target)).mode & 0o7777).toBe(0o644);
  });

  it("should keep the target's mode when it exists and no mode is given", async () => {
    await writeFile(target, 'old', { mode: 0o640 });
    await store.write(chunk(0, 'new', { commit: true }));
    expect((await stat(target)).mode & 0o7777).toBe(0o640);
    expect(await readFile(target, 'utf8')).toBe('new');
  });

  it('should apply the mode when one is given', async () => {
    await store.write(chunk(0, 'a', { mode: 0o600 }));
    await store.write(chunk(1, 'b', { commit: true, mode: 0o751 }));
    expect((await stat(target)).mode & 0o7777).toBe(0o751);
  });

  (isRoot ? it : it.skip)('should set the owner when uid and gid are given', async () => {
    await store.write(chunk(0, 'owned', { commit: true, uid: 1234, gid: 5678 }));
    const st = await stat(target);
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
  });

  it('should refuse a chunk when its path differs from the upload target', async () => {
    await store.write(chunk(0, 'a'));
    await expect(store.write(chunk(1, 'b', { path: join(dir, 'other') }))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('not'),
    });
  });

  it('should refuse an upload id when it has characters outside the allowed set', async () => {
    await expect(store.write(chunk(0, 'a', { uploadId: 'a/b' }))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    });
    await expect(store.write(chunk(0, 'a', { uploadId: 'x'.repeat(65) }))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
    });
  });

  it('should answer BUSY when files.max_uploads uploads are open', async () => {
    for (let i = 0; i < 4; i++) {
      await store.write(chunk(0, 'a', { uploadId: `u${i}`, path: join(dir, `f${i}`) }));
    }
    await expect(
      store.write(chunk(0, 'a', { uploadId: 'u4', path: join(dir, 'f4') })),
    ).rejects.toMatchObject({
      code: ErrorCode.BUSY,
      message: expect.stringContaining('files.max_uploads = 4'),
    });
    // A chunk of an upload that is already open still goes through.
    await expect(
      store.write(chunk(1, 'b', { uploadId: 'u0', path: join(dir, 'f0') })),
    ).resolves.toMatchObject({ size: 2 });
  });

  it('should remove the temp file when an upload stays idle past the timeout', async () => {
    await store.closeAll();
    store = new UploadStore({ upload_idle_timeout_ms: 50, max_uploads: 4 });
    await store.write(chunk(0, 'abandoned'));
    const temp = uploadTempPath(target, 'up-1');
    await expect(stat(temp)).resolves.toBeDefined();
    for (let i = 0; i < 50 && store.openUploads > 0; i++) {
      await sleep(20);
    }
    await sleep(20);
    expect(store.openUploads).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('should start afresh when an upload id is reused after its commit', async () => {
    await store.write(chunk(0, 'first', { commit: true }));
    await store.write(chunk(0, 'second', { commit: true }));
    expect(await readFile(target, 'utf8')).toBe('second');
  });

  it('should replace a stale temp file when an earlier agent left one behind', async () => {
    await writeFile(uploadTempPath(target, 'up-1'), 'stale stale stale');
    await store.write(chunk(0, 'new', { commit: true }));
    expect(await readFile(target, 'utf8')).toBe('new');
  });

  it('should answer NOT_FOUND when the target directory does not exist', async () => {
    await expect(
      store.write(chunk(0, 'x', { path: join(dir, 'missing', 'file') })),
    ).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    expect(store.openUploads).toBe(0);
  });

  it('should remove temp files and refuse new chunks when closed', async () => {
    await store.write(chunk(0, 'pending'));
    await store.closeAll();
    expect(await readdir(dir)).toEqual([]);
    await expect(store.write(chunk(0, 'late'))).rejects.toMatchObject({ code: ErrorCode.BUSY });
  });
});
