import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
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
    dir = await realpath(await mkdtemp(join(tmpdir(), 'lq-upload-')));
    target = join(dir, 'target.txt');
    store = new UploadStore({ upload_idle_timeout_ms: 60_000, max_uploads: 4, roots: ['/'] });
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
    store = new UploadStore({ upload_idle_timeout_ms: 50, max_uploads: 4, roots: ['/'] });
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

  describe('symbolic links', () => {
    let outside: string;

    beforeEach(async () => {
      outside = await realpath(await mkdtemp(join(tmpdir(), 'lq-upload-outside-')));
    });

    afterEach(async () => {
      await rm(outside, { recursive: true, force: true });
    });

    const refused = (message: string): object => ({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining(message),
    });

    it('should refuse an upload to a link and create neither its target nor a temp file', async () => {
      await symlink(join(outside, 'evil'), target);
      await expect(store.write(chunk(0, 'evil', { commit: true }))).rejects.toMatchObject(
        refused(`path "${target}" is a symbolic link`),
      );
      expect(await readdir(outside)).toEqual([]);
      expect(await readdir(dir)).toEqual(['target.txt']);
      expect(store.openUploads).toBe(0);
    });

    it('should refuse the commit when a link was planted at the target after the start', async () => {
      await store.write(chunk(0, 'evil'));
      await symlink(join(outside, 'evil'), target);
      await expect(store.write(chunk(4, '!', { commit: true }))).rejects.toMatchObject(
        refused('is a symbolic link'),
      );
      expect(await readdir(outside)).toEqual([]);
      expect((await lstat(target)).isSymbolicLink()).toBe(true);
    });

    it('should refuse the commit when the directory was swapped for a link after the start', async () => {
      const sub = join(dir, 'sub');
      await mkdir(sub);
      const path = join(sub, 'f');
      await store.write(chunk(0, 'evil', { path }));
      await rename(sub, join(dir, 'moved'));
      await symlink(outside, sub);
      await expect(store.write(chunk(4, '!', { path, commit: true }))).rejects.toMatchObject(
        refused(`directory "${sub}" was moved or replaced while in use`),
      );
      expect(await readdir(outside)).toEqual([]);
      // The temp file went with the refused commit.
      expect(await readdir(join(dir, 'moved'))).toEqual([]);
    });

    it('should refuse the commit when the temp file was replaced after the start', async () => {
      await store.write(chunk(0, 'mine'));
      const temp = uploadTempPath(target, 'up-1');
      await unlink(temp);
      await writeFile(temp, 'theirs');
      await expect(store.write(chunk(4, '!', { commit: true }))).rejects.toMatchObject(
        refused('was removed or replaced before the commit'),
      );
      await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    });

    (isRoot ? it : it.skip)(
      'should refuse an upload under a directory link owned by another user',
      async () => {
        const link = join(dir, 'theirs');
        await symlink(outside, link);
        await lchown(link, 65534, 65534);
        await expect(
          store.write(chunk(0, 'x', { path: join(link, 'f'), commit: true })),
        ).rejects.toMatchObject(refused(`symbolic link "${link}" is owned by uid 65534`));
        expect(await readdir(outside)).toEqual([]);
      },
    );

    it('should upload through a trusted link in the parent chain into the real directory', async () => {
      await mkdir(join(dir, 'real'));
      await symlink('real', join(dir, 'alias'));
      await store.write(chunk(0, 'ok', { path: join(dir, 'alias', 'f'), commit: true }));
      expect(await readFile(join(dir, 'real', 'f'), 'utf8')).toBe('ok');
    });

    it('should refuse an upload when a link in the parent chain leads outside the roots', async () => {
      await store.closeAll();
      store = new UploadStore({ upload_idle_timeout_ms: 60_000, max_uploads: 4, roots: [dir] });
      await symlink(outside, join(dir, 'escape'));
      await expect(
        store.write(chunk(0, 'x', { path: join(dir, 'escape', 'f'), commit: true })),
      ).rejects.toMatchObject(refused('outside the allowed roots'));
      expect(await readdir(outside)).toEqual([]);
    });
  });
});
