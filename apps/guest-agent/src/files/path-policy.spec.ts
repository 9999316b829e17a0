import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@lq/proto';
import { checkPath, PathPolicy } from './path-policy.js';

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
});
