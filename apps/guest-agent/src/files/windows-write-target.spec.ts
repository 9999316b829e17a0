// The Windows write rules' own logic, on an in-memory double of the few filesystem calls they
// make (realpath, lstat, stat, readdir, rmdir, unlink): no Windows filesystem is reachable here.
// What the double models: junctions (realpath follows them, lstat reports them as links),
// file identity (dev = volume serial, ino = file ID), case-insensitive names.
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { describe, expect, it } from '@jest/globals';
import { ErrorCode } from '@lq/proto';
import { PathPolicy, WINDOWS_PATH_RULES, WINDOWS_RESTRICTED_WRITES } from './path-policy.js';
import {
  emptyWindowsDirectory,
  openWindowsWriteTarget,
  sameWindowsPath,
  windowsOpenedPath,
  type WindowsFs,
} from './windows-write-target.js';

type Node =
  | { kind: 'dir'; ino: number }
  | { kind: 'file'; ino: number }
  | { kind: 'link'; ino: number; to: string };

const enoent = (p: string) => Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });

function stats(node: Node, dev = 7): Stats {
  return {
    dev,
    ino: node.ino,
    isDirectory: () => node.kind === 'dir',
    isFile: () => node.kind === 'file',
    isSymbolicLink: () => node.kind === 'link',
  } as Stats;
}

/** An in-memory volume: keys are lower-cased paths, as NTFS compares them. */
class FakeVolume implements WindowsFs {
  readonly nodes = new Map<string, { name: string; node: Node }>();
  private nextIno = 100;

  add(path: string, kind: 'dir' | 'file', ino = this.nextIno++): this {
    this.nodes.set(path.toLowerCase(), { name: path, node: { kind, ino } });
    return this;
  }

  link(path: string, to: string): this {
    this.nodes.set(path.toLowerCase(), {
      name: path,
      node: { kind: 'link', ino: this.nextIno++, to },
    });
    return this;
  }

  remove(path: string): void {
    this.nodes.delete(path.toLowerCase());
  }

  /** Follows junctions component by component, as GetFinalPathNameByHandleW reports. */
  private resolve(path: string, hops = 0): string {
    if (hops > 40) {
      throw Object.assign(new Error('ELOOP'), { code: 'ELOOP' });
    }
    const parts = path.split('\\');
    let here = parts[0]!; // "C:"
    for (const part of parts.slice(1)) {
      if (part === '') {
        continue;
      }
      const next = `${here}\\${part}`;
      const entry = this.nodes.get(next.toLowerCase());
      if (!entry) {
        throw enoent(path);
      }
      here = entry.node.kind === 'link' ? this.resolve(entry.node.to, hops + 1) : entry.name;
    }
    return here.includes('\\') ? here : `${here}\\`;
  }

  async realpath(path: string): Promise<string> {
    return this.resolve(path);
  }

  async lstat(path: string): Promise<Stats> {
    const parent = path.slice(0, path.lastIndexOf('\\'));
    const name = path.slice(path.lastIndexOf('\\') + 1);
    const dir = parent.includes('\\') ? this.resolve(parent) : `${parent}\\`;
    const entry = this.nodes.get(`${dir.replace(/\\$/, '')}\\${name}`.toLowerCase());
    if (!entry) {
      throw enoent(path);
    }
    return stats(entry.node);
  }

  async stat(path: string): Promise<Stats> {
    const real = this.resolve(path);
    if (/^[A-Za-z]:\\$/.test(real)) {
      return stats({ kind: 'dir', ino: 5 });
    }
    return stats(this.nodes.get(real.toLowerCase())!.node);
  }

  async readdir(path: string, max: number): Promise<string[]> {
    const dir = this.resolve(path).toLowerCase();
    return [...this.nodes.keys()]
      .filter((k) => k.startsWith(`${dir}\\`) && !k.slice(dir.length + 1).includes('\\'))
      .map((k) => this.nodes.get(k)!.name.slice(dir.length + 1))
      .slice(0, max);
  }

  async rmdir(path: string): Promise<void> {
    const real = this.resolve(path).toLowerCase();
    if ([...this.nodes.keys()].some((k) => k.startsWith(`${real}\\`))) {
      throw Object.assign(new Error('ENOTEMPTY'), { code: 'ENOTEMPTY' });
    }
    this.nodes.delete(real);
  }

  async unlink(path: string): Promise<void> {
    const parent = this.resolve(path.slice(0, path.lastIndexOf('\\')));
    this.nodes.delete(`${parent}\\${path.slice(path.lastIndexOf('\\') + 1)}`.toLowerCase());
  }

  /** A handle on whatever `path` names now: what an open through it would hold. */
  async handleOn(path: string): Promise<Pick<FileHandle, 'stat'>> {
    const st = await this.stat(path);
    return { stat: async () => st } as Pick<FileHandle, 'stat'>;
  }
}

const volume = () =>
  new FakeVolume()
    .add('C:\\data', 'dir')
    .add('C:\\data\\sub', 'dir')
    .add('C:\\data\\sub\\file.txt', 'file')
    .add('C:\\Windows', 'dir')
    .add('C:\\Windows\\System32', 'dir')
    .add('C:\\Windows\\System32\\config.sys', 'file');

const policy = (fs: WindowsFs) => new PathPolicy(['C:\\data'], [], WINDOWS_PATH_RULES(false, fs));

describe('the Windows write place', () => {
  it('should name the target in the parent’s final path, case as on disk', async () => {
    const fs = volume();
    const target = await openWindowsWriteTarget('C:\\DATA\\Sub\\new.txt', 'refuse', fs);
    expect(target.dirPath).toBe('C:\\data\\sub');
    expect(target.path).toBe('C:\\data\\sub\\new.txt');
    expect(target.entry('.new.txt.lq-upload-u1')).toBe('C:\\data\\sub\\.new.txt.lq-upload-u1');
    await expect(target.checkDirInPlace()).resolves.toBeUndefined();
  });

  it('should refuse a drive root, a missing parent and a parent that is a file', async () => {
    const fs = volume();
    await expect(openWindowsWriteTarget('C:\\', 'refuse', fs)).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
    });
    await expect(openWindowsWriteTarget('C:\\data\\nope\\x', 'refuse', fs)).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
      message: expect.stringContaining('does not exist'),
    });
    await expect(
      openWindowsWriteTarget('C:\\data\\sub\\file.txt\\x', 'refuse', fs),
    ).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
  });

  it('should refuse a junction in the last component for writes, and leave it to delete and rename', async () => {
    const fs = volume().link('C:\\data\\sub\\j', 'C:\\Windows\\System32');
    await expect(openWindowsWriteTarget('C:\\data\\sub\\j', 'refuse', fs)).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('symbolic link or junction'),
    });
    const target = await openWindowsWriteTarget('C:\\data\\sub\\j', 'allow', fs);
    expect((await target.lstat())?.isSymbolicLink()).toBe(true);
  });

  it('should refuse once a directory on the way is swapped for a junction', async () => {
    const fs = volume();
    const target = await openWindowsWriteTarget('C:\\data\\sub\\new.txt', 'refuse', fs);
    // Someone renames sub away and puts a junction to System32 in its place.
    fs.remove('C:\\data\\sub');
    fs.link('C:\\data\\sub', 'C:\\Windows\\System32');
    await expect(target.checkDirInPlace()).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('moved or replaced'),
    });
  });

  it('should refuse a directory replaced by another at the same path', async () => {
    const fs = volume();
    const target = await openWindowsWriteTarget('C:\\data\\sub\\new.txt', 'refuse', fs);
    fs.remove('C:\\data\\sub');
    fs.add('C:\\data\\sub', 'dir');
    await expect(target.checkDirInPlace()).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
    });
  });

  it('should accept a handle on the checked file and refuse one on another file', async () => {
    const fs = volume();
    const target = await openWindowsWriteTarget('C:\\data\\sub\\file.txt', 'refuse', fs);
    const good = await fs.handleOn('C:\\data\\sub\\file.txt');
    await expect(target.checkOpened(good as FileHandle)).resolves.toBeUndefined();
    // The open went through a junction swapped in and out again: the handle holds System32's
    // file, and the path names the data file again.
    const redirected = await fs.handleOn('C:\\Windows\\System32\\config.sys');
    await expect(target.checkOpened(redirected as FileHandle)).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('not the one the path names now'),
    });
  });

  it('should refuse a handle on a volume without file IDs, where identity proves nothing', async () => {
    const fs = volume().add('C:\\data\\fat.txt', 'file', 0);
    await expect(
      windowsOpenedPath(await fs.handleOn('C:\\data\\fat.txt'), 'C:\\data\\fat.txt', fs),
    ).rejects.toMatchObject({ message: expect.stringContaining('reports no file IDs') });
  });
});

describe('the Windows path policy', () => {
  it('should check writes against the roots after every junction on the way', async () => {
    const fs = volume().link('C:\\data\\out', 'C:\\Windows').link('C:\\data\\in', 'C:\\data\\sub');
    const paths = policy(fs);
    await expect(paths.openForWrite('C:\\data\\out\\System32\\evil.dll')).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('outside the allowed roots'),
    });
    // A junction that stays inside the roots is followed, like a trusted symlink on Linux.
    const target = await paths.openForWrite('C:\\data\\in\\x.txt');
    expect(target.path).toBe('C:\\data\\sub\\x.txt');
    await expect(paths.openForWrite('C:\\Windows\\x')).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
    });
  });

  it('should check a read handle where the path leads now', async () => {
    const fs = volume().link('C:\\data\\sys', 'C:\\Windows\\System32');
    const paths = policy(fs);
    const inside = await fs.handleOn('C:\\data\\sub\\file.txt');
    await expect(
      paths.checkOpened('C:\\data\\sub\\file.txt', inside as FileHandle),
    ).resolves.toBeUndefined();
    const outside = await fs.handleOn('C:\\data\\sys\\config.sys');
    await expect(
      paths.checkOpened('C:\\data\\sys\\config.sys', outside as FileHandle),
    ).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('outside the allowed roots'),
    });
  });

  it('should know the roots whatever their case, and the parents mkdir walks', async () => {
    const fs = volume();
    const paths = policy(fs);
    expect(await paths.isRoot('c:\\DATA', 'C:\\data')).toBe(true);
    expect(await paths.isRoot('C:\\', 'C:\\')).toBe(true);
    expect(await paths.isRoot('C:\\data\\sub', 'C:\\data\\sub')).toBe(false);
    expect(paths.os.ancestors('C:\\data\\a\\b')).toEqual([
      'C:\\data',
      'C:\\data\\a',
      'C:\\data\\a\\b',
    ]);
    expect(paths.os.ancestors('\\\\srv\\share\\a')).toEqual(['\\\\srv\\share\\a']);
    expect(sameWindowsPath('C:\\Data', 'c:\\data')).toBe(true);
  });

  it('should narrow with the same Windows rules', async () => {
    const fs = volume();
    const narrow = policy(fs).narrowed(['C:\\data\\sub']);
    expect(() => narrow.checkRequested('C:\\data\\other')).toThrow(/outside the allowed roots/);
    expect(() => narrow.checkRequested('C:\\data\\sub\\x')).not.toThrow();
  });

  it('should refuse changes by a caller with run-as limits, and Unix owners', () => {
    const paths = policy(volume());
    expect(() => paths.checkWriter({ roots: [], noSetid: true } as never)).toThrow(
      expect.objectContaining({ code: ErrorCode.UNSUPPORTED, message: WINDOWS_RESTRICTED_WRITES }),
    );
    expect(() => paths.checkWriter({ roots: ['C:\\data'], noSetid: false } as never)).not.toThrow();
    expect(() => paths.checkWriter(undefined)).not.toThrow();
    expect(() => paths.checkOwnerIds({ uid: 0 })).toThrow(
      expect.objectContaining({ code: ErrorCode.UNSUPPORTED }),
    );
    expect(() => paths.checkOwnerIds({})).not.toThrow();
  });
});

describe('emptyWindowsDirectory', () => {
  it('should remove a tree, and a junction inside it without following it', async () => {
    const fs = volume()
      .add('C:\\data\\t', 'dir')
      .add('C:\\data\\t\\a.txt', 'file')
      .add('C:\\data\\t\\d', 'dir')
      .add('C:\\data\\t\\d\\b.txt', 'file')
      .link('C:\\data\\t\\sys', 'C:\\Windows\\System32');
    const removed = await emptyWindowsDirectory('C:\\data\\t', await fs.lstat('C:\\data\\t'), fs);
    expect(removed).toBe(4);
    expect(await fs.readdir('C:\\data\\t', 10)).toEqual([]);
    // What the junction pointed to is untouched.
    expect(await fs.readdir('C:\\Windows\\System32', 10)).toEqual(['config.sys']);
  });

  it('should refuse a directory that is no longer the one checked', async () => {
    const fs = volume().add('C:\\data\\t', 'dir').add('C:\\data\\t\\a.txt', 'file');
    const st = await fs.lstat('C:\\data\\t');
    fs.remove('C:\\data\\t');
    fs.link('C:\\data\\t', 'C:\\Windows\\System32');
    await expect(emptyWindowsDirectory('C:\\data\\t', st, fs)).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('changed while it was being deleted'),
    });
    expect(await fs.readdir('C:\\Windows\\System32', 10)).toEqual(['config.sys']);
  });
});
