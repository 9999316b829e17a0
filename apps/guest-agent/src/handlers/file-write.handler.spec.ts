import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  chmod,
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
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  type AgentPayload,
  ErrorCode,
  FileWriteRequestSchema,
  type FileWriteResponse,
} from '@lq/proto';
import { defaultConfig } from '../config.js';
import { PathPolicy, type PathRules, type WriteTarget } from '../files/path-policy.js';
import { WRITE_CALL_MODES } from '../../test/support/write-call-modes.js';
import { UploadStore } from '../files/upload-store.js';
import { FileWriteHandler } from './file-write.handler.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** The real policy, with something done to the filesystem right after each write check. */
class SwappingPolicy extends PathPolicy {
  constructor(
    roots: string[],
    rules: PathRules,
    private readonly afterCheck: (target: WriteTarget) => Promise<void>,
  ) {
    super(roots, undefined, rules);
  }

  override async openForWrite(path: string): Promise<WriteTarget> {
    const target = await super.openForWrite(path);
    await this.afterCheck(target);
    return target;
  }
}

function asWrite(payload: AgentPayload): FileWriteResponse {
  if (payload.case !== 'fileWriteResponse') {
    throw new Error(`unexpected payload ${payload.case}`);
  }
  return payload.value;
}

// Every case twice: synchronous calls on a local filesystem, and through the thread pool.
describe.each(WRITE_CALL_MODES)('FileWriteHandler on a %s', (_mode, rules) => {
  let dir: string;
  let file: string;
  let uploads: UploadStore;
  let handler: FileWriteHandler;
  let config: ReturnType<typeof defaultConfig>;

  const policy = (): PathPolicy => new PathPolicy(config.files.roots, undefined, rules);
  const write = async (
    init: MessageInitShape<typeof FileWriteRequestSchema>,
  ): Promise<FileWriteResponse> =>
    asWrite(await handler.handle(create(FileWriteRequestSchema, { path: file, ...init })));

  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), 'lq-write-')));
    file = join(dir, 'f.txt');
    config = defaultConfig();
    config.files.roots = [dir];
    config.files.chunk_max_bytes = 16;
    uploads = new UploadStore(config.files);
    handler = new FileWriteHandler(config, uploads, policy());
  });

  afterEach(async () => {
    await uploads.closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('should create the file with the given mode when create is set', async () => {
    const r = await write({ data: Buffer.from('hello'), create: true, mode: 0o604 });
    expect(r).toMatchObject({ bytesWritten: 5n, size: 5n, committed: false });
    expect(await readFile(file, 'utf8')).toBe('hello');
    expect((await stat(file)).mode & 0o7777).toBe(0o604);
  });

  it('should answer NOT_FOUND when the file is missing and create is not set', async () => {
    await expect(write({ data: Buffer.from('x') })).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
    });
  });

  it('should write at the offset in place when the file exists', async () => {
    await writeFile(file, 'abcdefgh', { mode: 0o600 });
    const r = await write({ data: Buffer.from('XY'), offset: 3n, create: true, mode: 0o777 });
    expect(r).toMatchObject({ bytesWritten: 2n, size: 8n });
    expect(await readFile(file, 'utf8')).toBe('abcXYfgh');
    // The mode applies to files the request creates, not to existing ones.
    expect((await stat(file)).mode & 0o7777).toBe(0o600);
  });

  it('should extend the file when the offset is past its end', async () => {
    await writeFile(file, 'ab');
    const r = await write({ data: Buffer.from('Z'), offset: 4n });
    expect(r.size).toBe(5n);
    expect(await readFile(file)).toEqual(Buffer.from('ab\0\0Z'));
  });

  it('should append and ignore the offset when append is set', async () => {
    await writeFile(file, 'abc');
    const r = await write({ data: Buffer.from('de'), offset: 0n, append: true });
    expect(r).toMatchObject({ bytesWritten: 2n, size: 5n });
    expect(await readFile(file, 'utf8')).toBe('abcde');
  });

  it('should truncate before writing when truncate is set', async () => {
    await writeFile(file, 'a long old content');
    const r = await write({ data: Buffer.from('new'), truncate: true });
    expect(r.size).toBe(3n);
    expect(await readFile(file, 'utf8')).toBe('new');
  });

  (isRoot ? it : it.skip)('should change the owner when uid and gid are given', async () => {
    await writeFile(file, 'x');
    await write({ data: Buffer.from('y'), uid: 4321, gid: 8765 });
    const st = await stat(file);
    expect([st.uid, st.gid]).toEqual([4321, 8765]);
  });

  it('should answer TOO_LARGE naming files.chunk_max_bytes when data exceeds it', async () => {
    await expect(write({ data: Buffer.alloc(17), create: true })).rejects.toMatchObject({
      code: ErrorCode.TOO_LARGE,
      message: expect.stringContaining('files.chunk_max_bytes (16)'),
    });
  });

  it('should answer INVALID_REQUEST when the path is a directory', async () => {
    await mkdir(join(dir, 'd'));
    await expect(write({ path: join(dir, 'd'), data: Buffer.from('x') })).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('is a directory'),
    });
  });

  it('should answer INVALID_REQUEST when commit is set without upload_id', async () => {
    await expect(write({ data: Buffer.from('x'), commit: true })).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('upload_id'),
    });
  });

  it('should answer PATH_NOT_ALLOWED when the path is outside the roots', async () => {
    await expect(
      write({ path: '/etc/lq-should-not-exist', data: Buffer.from('x'), create: true }),
    ).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
  });

  it('should replace the file atomically when an upload is committed', async () => {
    await writeFile(file, 'old');
    const parts = ['0123456789abcdef', '0123456789ABCDEF', 'tail'];
    const acks = await Promise.all(
      [2, 1].map((i) =>
        write({ uploadId: 'job-7', offset: BigInt(i * 16), data: Buffer.from(parts[i] ?? '') }),
      ),
    );
    expect(acks.every((a) => !a.committed)).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('old');
    const done = await write({
      uploadId: 'job-7',
      offset: 0n,
      data: Buffer.from(parts[0] ?? ''),
      commit: true,
      mode: 0o640,
    });
    expect(done).toMatchObject({ bytesWritten: 16n, size: 36n, committed: true });
    expect(await readFile(file, 'utf8')).toBe(parts.join(''));
    expect((await stat(file)).mode & 0o7777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['f.txt']);
  });

  it('should answer INVALID_REQUEST when append is combined with upload_id', async () => {
    await expect(
      write({ uploadId: 'u', data: Buffer.from('x'), append: true }),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
  });

  describe('the caller’s FileLimits', () => {
    const limitsIn = (root: string) => ({ roots: [root], noSetid: true });

    it('should write under the caller’s roots and refuse outside them, even through a root-owned link', async () => {
      const inside = join(dir, 'app');
      await mkdir(inside);
      await mkdir(join(dir, 'other'));
      await symlink(join(dir, 'other'), join(inside, 'escape'));
      const ok = await write({
        path: join(inside, 'a.txt'),
        data: Buffer.from('ok'),
        create: true,
        limits: limitsIn(inside),
      });
      expect(ok.bytesWritten).toBe(2n);
      for (const path of [join(dir, 'other', 'b.txt'), join(inside, 'escape', 'b.txt')]) {
        await expect(
          write({ path, data: Buffer.from('no'), create: true, limits: limitsIn(inside) }),
        ).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
        await expect(
          write({
            path,
            data: Buffer.from('no'),
            uploadId: 'u1',
            commit: true,
            limits: limitsIn(inside),
          }),
        ).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
      }
      expect(await readdir(join(dir, 'other'))).toEqual([]);
    });

    it('should refuse set-id modes and owners, and clear set-id bits of what it replaces', async () => {
      await expect(
        write({ data: Buffer.from('x'), create: true, mode: 0o4755, limits: limitsIn(dir) }),
      ).rejects.toMatchObject({ code: ErrorCode.NOT_ALLOWED });
      await expect(
        write({ data: Buffer.from('x'), create: true, uid: 0, limits: limitsIn(dir) }),
      ).rejects.toMatchObject({ code: ErrorCode.NOT_ALLOWED });
      await writeFile(file, 'old', { mode: 0o755 });
      await chmod(file, 0o6755);
      await write({ data: Buffer.from('new'), limits: limitsIn(dir) });
      expect((await stat(file)).mode & 0o7777).toBe(0o755);
      await chmod(file, 0o4755);
      await write({ data: Buffer.from('up'), uploadId: 'u2', commit: true, limits: limitsIn(dir) });
      expect((await stat(file)).mode & 0o7777).toBe(0o755);
      expect(await readFile(file, 'utf8')).toBe('up');
    });
  });

  describe('symbolic links', () => {
    let outside: string;

    beforeEach(async () => {
      outside = await realpath(await mkdtemp(join(tmpdir(), 'lq-write-outside-')));
    });

    afterEach(async () => {
      await rm(outside, { recursive: true, force: true });
    });

    /** With roots "/" (the default): nothing but the link rules stands in the way. */
    const useDefaultRoots = (): void => {
      config.files.roots = ['/'];
      uploads = new UploadStore(config.files);
      handler = new FileWriteHandler(config, uploads, policy());
    };

    it('should refuse an in-place write to a link in the last component and leave its target alone', async () => {
      useDefaultRoots();
      await writeFile(join(outside, 'victim'), 'precious');
      await symlink(join(outside, 'victim'), file);
      await expect(
        write({ data: Buffer.from('evil'), create: true, truncate: true }),
      ).rejects.toMatchObject({
        code: ErrorCode.PATH_NOT_ALLOWED,
        message: expect.stringContaining(`path "${file}" is a symbolic link`),
      });
      expect(await readFile(join(outside, 'victim'), 'utf8')).toBe('precious');
    });

    it('should refuse a write through a dangling link and create nothing', async () => {
      useDefaultRoots();
      await symlink(join(outside, 'cron-evil'), file);
      await expect(write({ data: Buffer.from('evil'), create: true })).rejects.toMatchObject({
        code: ErrorCode.PATH_NOT_ALLOWED,
      });
      await expect(
        write({ uploadId: 'u1', data: Buffer.from('evil'), commit: true }),
      ).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
      expect(await readdir(outside)).toEqual([]);
      expect((await lstat(file)).isSymbolicLink()).toBe(true);
    });

    (isRoot ? it : it.skip)(
      'should refuse a write under a directory link owned by another user',
      async () => {
        useDefaultRoots();
        const link = join(dir, 'theirs');
        await symlink(outside, link);
        await lchown(link, NOBODY, NOBODY);
        for (const init of [
          { path: join(link, 'a'), data: Buffer.from('x'), create: true },
          { path: join(link, 'b'), uploadId: 'u2', data: Buffer.from('x'), commit: true },
        ]) {
          await expect(write(init)).rejects.toMatchObject({
            code: ErrorCode.PATH_NOT_ALLOWED,
            message: expect.stringContaining(`symbolic link "${link}" is owned by uid ${NOBODY}`),
          });
        }
        expect(await readdir(outside)).toEqual([]);
      },
    );

    it('should write through a link in the parent chain when root or the agent owns it', async () => {
      await mkdir(join(dir, 'real'));
      await symlink('real', join(dir, 'alias'));
      await write({ path: join(dir, 'alias', 'in-place'), data: Buffer.from('1'), create: true });
      await write({
        path: join(dir, 'alias', 'uploaded'),
        uploadId: 'u3',
        data: Buffer.from('2'),
        commit: true,
      });
      expect(await readdir(join(dir, 'real'))).toEqual(['in-place', 'uploaded']);
    });

    it('should refuse a write when a link in the parent chain leads outside the roots', async () => {
      await symlink(outside, join(dir, 'escape'));
      await expect(
        write({ path: join(dir, 'escape', 'f'), data: Buffer.from('x'), create: true }),
      ).rejects.toMatchObject({
        code: ErrorCode.PATH_NOT_ALLOWED,
        message: expect.stringContaining('outside the allowed roots'),
      });
      expect(await readdir(outside)).toEqual([]);
    });

    it('should refuse, not write, when a link replaces the file between the check and the open', async () => {
      await writeFile(join(outside, 'victim'), 'precious');
      await writeFile(file, 'old');
      const paths = new SwappingPolicy(['/'], rules, async () => {
        await unlink(file);
        await symlink(join(outside, 'victim'), file);
      });
      handler = new FileWriteHandler(config, uploads, paths);
      await expect(write({ data: Buffer.from('evil'), truncate: true })).rejects.toMatchObject({
        code: ErrorCode.PATH_NOT_ALLOWED,
        message: expect.stringContaining('is a symbolic link'),
      });
      expect(await readFile(join(outside, 'victim'), 'utf8')).toBe('precious');
    });

    it('should refuse, not write, when the directory is swapped for a link between the check and the open', async () => {
      const sub = join(dir, 'sub');
      await mkdir(sub);
      await writeFile(join(sub, 'f'), 'old');
      await writeFile(join(outside, 'f'), 'precious');
      const paths = new SwappingPolicy(['/'], rules, async () => {
        await rename(sub, join(dir, 'moved'));
        await symlink(outside, sub);
      });
      handler = new FileWriteHandler(config, uploads, paths);
      await expect(
        write({ path: join(sub, 'f'), data: Buffer.from('evil'), truncate: true }),
      ).rejects.toMatchObject({
        code: ErrorCode.PATH_NOT_ALLOWED,
        message: expect.stringContaining(`the file opened is "${dir}/moved/f", not "${sub}/f"`),
      });
      expect(await readFile(join(outside, 'f'), 'utf8')).toBe('precious');
      // Refused before truncating or writing: the file in the moved directory is untouched.
      expect(await readFile(join(dir, 'moved', 'f'), 'utf8')).toBe('old');
    });
  });
});
