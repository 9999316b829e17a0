// The write place on a Windows guest (WINDOWS.md, "Files"). Linux holds the parent directory
// open and names everything relative to it through /proc/self/fd (write-target.ts); Node has no
// such call on Windows (no openat, no O_PATH, no GetFinalPathNameByHandleW on a descriptor). So
// a Windows write target is the parent's *final* path — fs.realpath, which Windows answers with
// GetFinalPathNameByHandleW, so every junction, symbolic link and mount point on the way is
// resolved — checked to be inside the roots, and the parent's identity (volume serial number
// and file ID, what fstat reports as dev and ino). Right before each change the directory is
// checked to be still at that path with that identity; after a file or directory is opened or
// created, the handle's identity is compared with what its checked path names now, so a
// junction swapped in between cannot lead a write out of the roots unnoticed: the handle is
// then refused before anything is written through it. The last component is never followed:
// a symbolic link or junction there is refused (writes) or acted on itself (delete, rename).
import type { Stats } from 'node:fs';
import { type FileHandle, lstat, opendir, realpath, rmdir, stat, unlink } from 'node:fs/promises';
import { win32 } from 'node:path';
import { ErrorCode } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { pathNotAllowed, quotePath } from './path-errors.js';
import type { WriteTarget } from './write-target.js';

/** The filesystem calls the Windows rules make (a double in unit tests of the pure logic). */
export interface WindowsFs {
  realpath(path: string): Promise<string>;
  lstat(path: string): Promise<Stats>;
  stat(path: string): Promise<Stats>;
  /** Up to `max` names in a directory (no "." or ".."). */
  readdir(path: string, max: number): Promise<string[]>;
  rmdir(path: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

export const NODE_WINDOWS_FS: WindowsFs = {
  realpath: (p) => realpath(p),
  lstat: (p) => lstat(p),
  stat: (p) => stat(p),
  async readdir(p, max) {
    const names: string[] = [];
    const dir = await opendir(p, { bufferSize: 256 });
    try {
      for (let e = await dir.read(); e !== null && names.length < max; e = await dir.read()) {
        names.push(e.name);
      }
    } finally {
      await dir.close();
    }
    return names;
  },
  rmdir: (p) => rmdir(p),
  unlink: (p) => unlink(p),
};

// Like tree-removal.ts: names read before removing them, and the deepest nesting walked.
const BATCH = 1024;
const MAX_TREE_DEPTH = 256;

/** NTFS compares names case-insensitively (by default): so do the checks. */
export function sameWindowsPath(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

/** The same file: the same volume and file ID. A volume without file IDs (0) proves nothing. */
export function sameWindowsFile(a: Stats, b: Stats): boolean {
  return a.ino !== 0 && a.dev === b.dev && a.ino === b.ino;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Where a handle opened by the checked path `openedBy` really is: the final path of what that
 * path names now, required to be the very file the handle holds (same volume, same file ID).
 * A junction swapped in before the open and swapped back after it leaves a handle whose
 * identity no path inside the roots has: refused.
 */
export async function windowsOpenedPath(
  handle: Pick<FileHandle, 'stat'>,
  openedBy: string,
  fs: WindowsFs = NODE_WINDOWS_FS,
): Promise<string> {
  const held = await handle.stat();
  let real: string;
  let named: Stats;
  try {
    real = await fs.realpath(openedBy);
    named = await fs.stat(real);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') {
      throw pathNotAllowed(
        `path ${quotePath(openedBy)} was removed or replaced while it was opened`,
      );
    }
    throw err;
  }
  if (held.ino === 0) {
    throw pathNotAllowed(
      `path ${quotePath(openedBy)} is on a volume that reports no file IDs, so the file opened cannot be checked to be the one named`,
    );
  }
  if (!sameWindowsFile(held, named)) {
    throw pathNotAllowed(
      `path ${quotePath(openedBy)}: the file opened is not the one the path names now; something was moved or replaced while it was opened`,
    );
  }
  return real;
}

/**
 * A Windows write place: the parent's final path and identity, and the last component. Every
 * path it gives (entry) names the file in that final path, never through a link.
 */
export class WindowsWriteTarget implements WriteTarget {
  /** Windows writes always go through the thread pool (no mount table to tell local from remote). */
  readonly local = false;

  constructor(
    readonly requested: string,
    readonly dirPath: string,
    private readonly dirStat: Stats,
    readonly name: string,
    private readonly fs: WindowsFs = NODE_WINDOWS_FS,
  ) {}

  get path(): string {
    return win32.join(this.dirPath, this.name);
  }

  entry(name = this.name): string {
    return win32.join(this.dirPath, name);
  }

  async lstat(name = this.name): Promise<Stats | undefined> {
    try {
      return await this.fs.lstat(this.entry(name));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') {
        return undefined;
      }
      throw toAgentOpError(err, `checking ${quotePath(this.entry(name))}`);
    }
  }

  linkRefused(): AgentOpError {
    return pathNotAllowed(
      `path ${quotePath(this.requested)} is a symbolic link or junction; writes do not follow a link in the last component`,
    );
  }

  async checkNotLink(): Promise<Stats | undefined> {
    const st = await this.lstat();
    if (st?.isSymbolicLink()) {
      throw this.linkRefused();
    }
    return st;
  }

  async checkDirInPlace(): Promise<void> {
    let now: string;
    let st: Stats;
    try {
      now = await this.fs.realpath(this.dirPath);
      st = await this.fs.stat(now);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') {
        throw pathNotAllowed(
          `path ${quotePath(this.requested)}: directory ${quotePath(this.dirPath)} was moved or removed while in use`,
        );
      }
      throw toAgentOpError(err, `checking ${quotePath(this.dirPath)}`);
    }
    if (!sameWindowsPath(now, this.dirPath) || !sameWindowsFile(st, this.dirStat)) {
      throw pathNotAllowed(
        `path ${quotePath(this.requested)}: directory ${quotePath(this.dirPath)} was moved or replaced while in use (it now leads to ${quotePath(now)})`,
      );
    }
  }

  async checkOpened(handle: FileHandle, name = this.name): Promise<void> {
    const expected = this.entry(name);
    const real = await windowsOpenedPath(handle, expected, this.fs);
    if (!sameWindowsPath(real, expected)) {
      throw pathNotAllowed(
        `path ${quotePath(this.requested)}: the file opened is ${quotePath(real)}, not ${quotePath(expected)}; something was moved or replaced while it was opened`,
      );
    }
    await this.checkDirInPlace();
  }

  emptyDirectory(st: Stats, name = this.name): Promise<number> {
    return emptyWindowsDirectory(this.entry(name), st, this.fs);
  }

  // NTFS journals directory changes; Node cannot open a directory for FlushFileBuffers.
  async syncDir(): Promise<void> {}

  // Nothing is held open.
  async close(): Promise<void> {}
}

/**
 * Opens the write place of `requested` (lexically checked already): the parent's final path,
 * which must exist and be a directory, and its identity. `lastComponentLink` 'refuse' refuses a
 * link in the last component; 'allow' leaves it to the operation (delete and rename act on the
 * link itself). The caller checks the final path against the roots.
 */
export async function openWindowsWriteTarget(
  requested: string,
  lastComponentLink: 'refuse' | 'allow' = 'refuse',
  fs: WindowsFs = NODE_WINDOWS_FS,
): Promise<WindowsWriteTarget> {
  const q = quotePath(requested);
  const parent = win32.dirname(requested);
  const name = win32.basename(requested);
  if (parent === requested || name === '') {
    throw pathNotAllowed(`path ${q} is the root of a drive or share; it cannot be written`);
  }
  let dirPath: string;
  let st: Stats;
  try {
    dirPath = await fs.realpath(parent);
    st = await fs.stat(dirPath);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') {
      throw new AgentOpError(
        ErrorCode.NOT_FOUND,
        `path ${q}: directory ${quotePath(parent)} does not exist`,
      );
    }
    if (code === 'ENOTDIR') {
      throw new AgentOpError(
        ErrorCode.NOT_FOUND,
        `path ${q}: ${quotePath(parent)} is not a directory`,
      );
    }
    throw toAgentOpError(err, `path ${q}: checking ${quotePath(parent)}`);
  }
  if (!st.isDirectory()) {
    throw new AgentOpError(
      ErrorCode.NOT_FOUND,
      `path ${q}: ${quotePath(parent)} is not a directory`,
    );
  }
  const target = new WindowsWriteTarget(requested, dirPath, st, name, fs);
  if (lastComponentLink === 'refuse') {
    await target.checkNotLink();
  }
  return target;
}

/**
 * Removes everything inside the directory at `path` (its final path, lstat'd as `st`). Links
 * (symbolic links, junctions, volume mount points) are removed themselves, never followed; each
 * directory is checked to be still where and what it was before it is read, so one swapped for
 * a junction meanwhile is refused. Returns how many entries were removed.
 */
export async function emptyWindowsDirectory(
  path: string,
  st: Stats,
  fs: WindowsFs = NODE_WINDOWS_FS,
  depth = 0,
): Promise<number> {
  if (depth >= MAX_TREE_DEPTH) {
    throw new AgentOpError(
      ErrorCode.TOO_LARGE,
      `${quotePath(path)} is nested more than ${MAX_TREE_DEPTH} directories deep`,
    );
  }
  const inPlace = async (): Promise<void> => {
    const real = await fs.realpath(path).catch(() => '');
    const now = real === '' ? undefined : await fs.lstat(real).catch(() => undefined);
    if (!sameWindowsPath(real, path) || !now || !now.isDirectory() || !sameWindowsFile(now, st)) {
      throw pathNotAllowed(`${quotePath(path)} changed while it was being deleted`);
    }
  };
  await inPlace();
  let removed = 0;
  for (;;) {
    const names = await fs.readdir(path, BATCH);
    if (names.length === 0) {
      return removed;
    }
    for (const name of names) {
      const child = win32.join(path, name);
      let cst: Stats;
      try {
        cst = await fs.lstat(child);
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') {
          continue;
        }
        throw err;
      }
      await inPlace();
      if (cst.isDirectory() && !cst.isSymbolicLink()) {
        removed += await emptyWindowsDirectory(child, cst, fs, depth + 1);
        await fs.rmdir(child);
      } else {
        // A file, or a link to a directory (removed as the link: Node removes a directory
        // junction or symbolic link with RemoveDirectoryW, never what it points to).
        await fs.unlink(child);
      }
      removed++;
    }
  }
}
