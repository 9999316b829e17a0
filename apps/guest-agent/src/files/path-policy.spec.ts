import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  lchown,
  mkdir,
  mkdtemp,
  open,
  readFile,
  realpath,
  rename,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@lq/proto';
import { WRITE_CALL_MODES } from '../../test/support/write-call-modes.js';
import { checkPath, PathPolicy, type WriteTarget } from './path-policy.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

function refused(message: string): object {
  return { code: ErrorCode.PATH_NOT_ALLOWED, message: expect.stringContaining(message) };
}

describe('PathPolicy', () => {
  let base: string;
  let root: string;
  let policy: PathPolicy;

  beforeEach(async () => {
    base = await realpath(await mkdtemp(join(tmpdir(), 'lq-path-')));
    root = join(base, 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub', 'file.txt'), 'x');
    await writeFile(join(base, 'secret'), 'outside');
    policy = new PathPolicy([root]);
  });

  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('should accept an existing file when it is inside a root', async () => {
    await expect(policy.check(`${root}/sub/file.txt`)).resolves.toBe(`${root}/sub/file.txt`);
  });

  it('should accept a missing file when its directory is inside a root', async () => {
    await expect(policy.check(`${root}/sub/new/deeper.txt`)).resolves.toBe(
      `${root}/sub/new/deeper.txt`,
    );
  });

  it('should accept the root itself when it is named exactly', async () => {
    await expect(policy.check(root)).resolves.toBe(root);
  });

  it('should refuse when the path is empty', async () => {
    await expect(policy.check('')).rejects.toMatchObject(refused('non-empty'));
  });

  it('should refuse when the path is relative', async () => {
    await expect(policy.check('a/b')).rejects.toMatchObject(refused('path "a/b" must be absolute'));
  });

  it('should refuse when the path has a ".." segment', async () => {
    await expect(policy.check(`${root}/../secret`)).rejects.toMatchObject(
      refused('must be normalised (no "." or ".." segments)'),
    );
  });

  it('should refuse when the path has a "." segment', async () => {
    await expect(policy.check(`${root}/./sub`)).rejects.toMatchObject(
      refused('must be normalised (no "." or ".." segments)'),
    );
  });

  it('should refuse when the path has "//"', async () => {
    await expect(policy.check(`${root}//sub`)).rejects.toMatchObject(refused('(no "//")'));
  });

  it('should refuse when the path has a trailing slash', async () => {
    await expect(policy.check(`${root}/sub/`)).rejects.toMatchObject(refused('(no trailing "/")'));
  });

  it('should refuse when the path contains NUL', async () => {
    await expect(policy.check(`${root}/a\0b`)).rejects.toMatchObject(
      refused('must not contain NUL'),
    );
  });

  it('should refuse when the path is longer than 4096 bytes', async () => {
    await expect(policy.check(`${root}/${'é'.repeat(2100)}`)).rejects.toMatchObject(
      refused('longer than 4096 bytes'),
    );
  });

  it('should refuse when the path is outside the roots', async () => {
    await expect(policy.check('/etc/passwd')).rejects.toMatchObject(
      refused(`path "/etc/passwd" is outside the allowed roots (${root})`),
    );
  });

  it('should refuse when the path only shares a prefix with a root', async () => {
    await expect(policy.check(`${root}-other/file`)).rejects.toMatchObject(
      refused('outside the allowed roots'),
    );
  });

  it('should refuse when a symlink inside the root points outside it', async () => {
    await symlink(base, join(root, 'escape'));
    await expect(policy.check(`${root}/escape/secret`)).rejects.toMatchObject(
      refused(`resolves to "${base}/secret", outside the allowed roots`),
    );
  });

  it('should refuse when a missing file lies under a symlink pointing outside', async () => {
    await symlink(base, join(root, 'escape'));
    await expect(policy.check(`${root}/escape/new-file`)).rejects.toMatchObject(
      refused('outside the allowed roots'),
    );
  });

  it('should refuse when a dangling symlink points outside the root', async () => {
    await symlink(join(base, 'not-yet'), join(root, 'dangling'));
    await expect(policy.check(`${root}/dangling`)).rejects.toMatchObject(
      refused(`resolves to "${base}/not-yet"`),
    );
  });

  it('should follow a symlink when it stays inside the root', async () => {
    await symlink('sub/file.txt', join(root, 'link'));
    await expect(policy.check(`${root}/link`)).resolves.toBe(`${root}/sub/file.txt`);
  });

  it('should follow a dangling symlink when its target is inside the root', async () => {
    await symlink('sub/created-later', join(root, 'dangling'));
    await expect(policy.check(`${root}/dangling`)).resolves.toBe(`${root}/sub/created-later`);
  });

  it('should refuse when symlinks loop', async () => {
    await symlink('b', join(root, 'a'));
    await symlink('a', join(root, 'b'));
    await expect(policy.check(`${root}/a`)).rejects.toMatchObject(
      refused('too many levels of symbolic links'),
    );
  });

  it('should accept paths under a root when the root itself is a symlink', async () => {
    const linkedRoot = join(base, 'linked-root');
    await symlink(root, linkedRoot);
    await expect(checkPath(`${linkedRoot}/sub/file.txt`, [linkedRoot])).resolves.toBe(
      `${root}/sub/file.txt`,
    );
  });

  it('should accept any absolute path when "/" is a root', async () => {
    await expect(checkPath('/etc/hostname-maybe-missing', ['/'])).resolves.toBe(
      '/etc/hostname-maybe-missing',
    );
  });

  it('should accept a root given with a trailing slash when checking paths under it', async () => {
    await expect(checkPath(`${root}/sub`, [`${root}/`])).resolves.toBe(`${root}/sub`);
  });

  it('should follow a link owned by another user when reading', async () => {
    await symlink('sub', join(root, 'theirs'));
    if (isRoot) {
      await lchown(join(root, 'theirs'), NOBODY, NOBODY);
    }
    await expect(policy.check(`${root}/theirs/file.txt`)).resolves.toBe(`${root}/sub/file.txt`);
  });

  it('should refuse the file opened for a read when a link outside was swapped in after the check', async () => {
    const path = `${root}/sub/file.txt`;
    await expect(policy.check(path)).resolves.toBe(path);
    await unlink(path);
    await symlink(join(base, 'secret'), path);
    const handle = await open(path, 'r');
    try {
      await expect(policy.checkOpened(path, handle)).rejects.toMatchObject(
        refused(`resolves to "${base}/secret", outside the allowed roots`),
      );
    } finally {
      await handle.close();
    }
  });

  // Every case twice: synchronous calls on a local filesystem, and through the thread pool.
  describe.each(WRITE_CALL_MODES)('openForWrite on a %s', (_mode, rules, local) => {
    const targets: WriteTarget[] = [];
    const openForWrite = async (path: string, roots = [root]): Promise<WriteTarget> => {
      const target = await new PathPolicy(roots, undefined, rules).openForWrite(path);
      targets.push(target);
      return target;
    };

    it(`should say the target is ${local ? '' : 'not '}local`, async () => {
      expect((await openForWrite(`${root}/sub/file.txt`)).local).toBe(local);
    });

    afterEach(async () => {
      await Promise.all(targets.splice(0).map((t) => t.close()));
    });

    it('should hold the parent directory when the path has no links', async () => {
      const target = await openForWrite(`${root}/sub/file.txt`);
      expect([target.dirPath, target.name, target.path]).toEqual([
        `${root}/sub`,
        'file.txt',
        `${root}/sub/file.txt`,
      ]);
      expect(await readFile(target.entry(), 'utf8')).toBe('x');
    });

    it('should accept a missing file when its directory exists', async () => {
      const target = await openForWrite(`${root}/sub/new.txt`);
      expect(target.path).toBe(`${root}/sub/new.txt`);
    });

    it('should refuse when the last component is a symlink even inside the root', async () => {
      await symlink('sub/file.txt', join(root, 'link'));
      await expect(openForWrite(`${root}/link`)).rejects.toMatchObject(
        refused(`path "${root}/link" is a symbolic link`),
      );
    });

    it('should refuse when the last component is a dangling symlink', async () => {
      await symlink(join(base, 'not-yet'), join(root, 'dangling'));
      await expect(openForWrite(`${root}/dangling`)).rejects.toMatchObject(
        refused('is a symbolic link'),
      );
    });

    (isRoot ? it : it.skip)(
      'should refuse when a link in the parent chain is owned by another user, naming it and its owner',
      async () => {
        await symlink('sub', join(root, 'theirs'));
        await lchown(join(root, 'theirs'), NOBODY, NOBODY);
        await expect(openForWrite(`${root}/theirs/file.txt`)).rejects.toMatchObject(
          refused(
            `symbolic link "${root}/theirs" is owned by uid ${NOBODY}; writes follow only symbolic links owned by root`,
          ),
        );
      },
    );

    (isRoot ? it : it.skip)(
      'should refuse when a trusted link leads to one owned by another user',
      async () => {
        await symlink('sub', join(root, 'theirs'));
        await lchown(join(root, 'theirs'), NOBODY, NOBODY);
        await symlink(join(root, 'theirs'), join(base, 'mine'));
        await expect(openForWrite(`${base}/mine/x`, ['/'])).rejects.toMatchObject(
          refused(`symbolic link "${root}/theirs" is owned by uid ${NOBODY}`),
        );
      },
    );

    it('should follow a link in the parent chain when it is owned by root or the agent (merged /usr)', async () => {
      // Made by this process: owned by root when the tests run as root, else by the agent's uid.
      await mkdir(join(root, 'usr', 'bin'), { recursive: true });
      await symlink('usr/bin', join(root, 'bin'));
      const target = await openForWrite(`${root}/bin/tool`);
      expect(target.path).toBe(`${root}/usr/bin/tool`);
    });

    it('should follow a system link owned by root when one is on the path', async () => {
      // /bin -> usr/bin on merged-/usr systems; a plain directory elsewhere.
      const target = await openForWrite('/bin/lq-never-created', ['/']);
      expect(target.path).toBe(`${await realpath('/bin')}/lq-never-created`);
    });

    it('should follow ".." and absolute targets in trusted links', async () => {
      await mkdir(join(root, 'a', 'b'), { recursive: true });
      await symlink('../../sub', join(root, 'a', 'b', 'up'));
      await symlink(join(root, 'a', 'b', 'up'), join(root, 'abs'));
      expect((await openForWrite(`${root}/a/b/up/f`)).path).toBe(`${root}/sub/f`);
      expect((await openForWrite(`${root}/abs/f`)).path).toBe(`${root}/sub/f`);
    });

    it('should refuse when a link in the parent chain leads outside the roots', async () => {
      await symlink(base, join(root, 'escape'));
      await expect(openForWrite(`${root}/escape/new-file`)).rejects.toMatchObject(
        refused(`resolves to "${base}/new-file", outside the allowed roots (${root})`),
      );
    });

    it('should refuse when the path as written is outside the roots', async () => {
      await expect(openForWrite('/etc/lq-should-not-exist')).rejects.toMatchObject(
        refused('outside the allowed roots'),
      );
    });

    it('should answer NOT_FOUND naming the directory when it does not exist', async () => {
      await expect(openForWrite(`${root}/missing/deeper/f`)).rejects.toMatchObject({
        code: ErrorCode.NOT_FOUND,
        message: expect.stringContaining(`directory "${root}/missing" does not exist`),
      });
    });

    it('should answer NOT_FOUND when a link in the parent chain dangles', async () => {
      await symlink('gone', join(root, 'dangling'));
      await expect(openForWrite(`${root}/dangling/f`)).rejects.toMatchObject({
        code: ErrorCode.NOT_FOUND,
        message: expect.stringContaining(`directory "${root}/gone" does not exist`),
      });
    });

    it('should answer NOT_FOUND when a parent is a file', async () => {
      await expect(openForWrite(`${root}/sub/file.txt/f`)).rejects.toMatchObject({
        code: ErrorCode.NOT_FOUND,
        message: expect.stringContaining(`"${root}/sub/file.txt" is not a directory`),
      });
    });

    it('should refuse when links in the parent chain loop', async () => {
      await symlink('b', join(root, 'a'));
      await symlink('a', join(root, 'b'));
      await expect(openForWrite(`${root}/a/f`)).rejects.toMatchObject(
        refused('too many levels of symbolic links'),
      );
    });

    it('should refuse when the path is "/"', async () => {
      await expect(openForWrite('/', ['/'])).rejects.toMatchObject({
        code: ErrorCode.INVALID_REQUEST,
        message: expect.stringContaining('is a directory'),
      });
    });

    it('should keep naming the checked directory when a link is swapped in along the path', async () => {
      const target = await openForWrite(`${root}/sub/f`);
      await rename(join(root, 'sub'), join(root, 'moved'));
      await symlink(base, join(root, 'sub'));
      // Names still resolve in the directory checked, not through the new link.
      expect(await readFile(target.entry('file.txt'), 'utf8')).toBe('x');
      await expect(target.checkDirInPlace()).rejects.toMatchObject(
        refused(`directory "${root}/sub" was moved or replaced while in use`),
      );
    });
  });
});
