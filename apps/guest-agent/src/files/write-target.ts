import { constants, lstat, open, readlink, stat } from 'node:fs/promises';
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { ErrorCode } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { pathNotAllowed, quotePath } from './path-errors.js';
import { openFile, settled } from './file-io.js';
import { LocalMounts } from './local-mounts.js';
import { emptyDirectory } from './tree-removal.js';

// Linux's O_PATH (one value on x86-64, arm64 and every architecture with the generic flags);
// Node does not export it. A directory held this way needs search permission only.
const O_PATH = 0o10000000;
const DIR_FLAGS = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;
// Linux gives up after 40 symlinks (ELOOP); so does the walk.
const MAX_SYMLINK_HOPS = 40;

/** The running system's mount table (what openWriteTarget reads unless given another). */
const SYSTEM_MOUNTS = new LocalMounts('/proc/self/mounts');

/** A directory held open: a FileHandle, or a descriptor opened synchronously (SyncFile). */
export interface HeldDir {
  readonly fd: number;
  close(): Promise<void>;
}

/**
 * The calls of a walk and of a write target, made synchronously when `sync` (a local
 * filesystem, LocalMounts) and through the thread pool otherwise. A synchronous call's error
 * still arrives as a rejection (settled).
 */
function lstatOf(path: string, sync: boolean): Promise<Stats> {
  return sync ? settled(() => lstatSync(path)) : lstat(path);
}

function readlinkOf(path: string, sync: boolean): Promise<string> {
  return sync ? settled(() => readlinkSync(path)) : readlink(path);
}

function openDir(path: string, sync: boolean): Promise<HeldDir> {
  return openFile(path, DIR_FLAGS, sync);
}

/**
 * `/proc/self/fd/<dir>/<name>`: the kernel jumps through the descriptor's magic link to the
 * directory it holds, wherever that now is, and looks `name` up there: openat(dir, name) for a
 * runtime without the *at() calls. Only the last component is looked up by name.
 */
function at(dir: HeldDir, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`;
}

let procChecked: Promise<void> | undefined;

// Without /proc every lookup below would fail as "does not exist"; say what is missing instead.
function checkProc(): Promise<void> {
  procChecked ??= stat('/proc/self/fd').then(
    () => undefined,
    (err: unknown) => {
      procChecked = undefined;
      throw new AgentOpError(
        ErrorCode.INTERNAL,
        `file writes need /proc mounted (/proc/self/fd: ${errnoOf(err) ?? String(err)})`,
      );
    },
  );
  return procChecked;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Where the kernel says an open descriptor is, as a path from `/`: a readlink in /proc, which
 * the kernel answers from its own tables without asking the file's filesystem (so it is made
 * synchronously whatever that filesystem is).
 */
export function openedPath(handle: { readonly fd: number }): Promise<string> {
  return settled(() => readlinkSync(`/proc/self/fd/${handle.fd}`));
}

export function isSameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function describeOwners(trustedUids: readonly number[]): string {
  return [...new Set(trustedUids)]
    .map((uid) => (uid === 0 ? 'root' : `the agent's uid ${uid}`))
    .join(' or ');
}

/**
 * The checked place of a write: the target's parent directory, inside the roots, and the last
 * component's name. Linux holds the directory open (ProcWriteTarget); Windows names it by its
 * final path and checks its identity (files/windows-write-target.ts). Close it when done.
 */
export interface WriteTarget {
  /** The path as requested, for messages. */
  readonly requested: string;
  /** The parent directory's path, every link on the way resolved. */
  readonly dirPath: string;
  /** The last component. */
  readonly name: string;
  /** The target's path, its parent's links resolved. */
  readonly path: string;
  /** A name in the checked directory, as a path that reaches that very directory. */
  entry(name?: string): string;
  /** lstat of a name in the checked directory; undefined when there is none. */
  lstat(name?: string): Promise<Stats | undefined>;
  /** The refusal for a link in the last component. */
  linkRefused(): AgentOpError;
  /** The last component as it is now (undefined: absent); refuses a link. */
  checkNotLink(): Promise<Stats | undefined>;
  /** Refuses unless the directory is still at the path it was checked at. */
  checkDirInPlace(): Promise<void>;
  /** Refuses unless `handle` is the file `name` of the checked directory. */
  checkOpened(handle: { readonly fd: number }, name?: string): Promise<void>;
  /**
   * The target's filesystem is local (LocalMounts): its file may be opened and written with
   * synchronous calls. Always false where the OS's target does not tell.
   */
  readonly local: boolean;
  /**
   * Removes everything inside the directory `name` (lstat'd as `st`), never following a link,
   * never leaving its filesystem; how many entries were removed.
   */
  emptyDirectory(st: Stats, name?: string): Promise<number>;
  /** Makes the directory's entries durable (where the OS allows). */
  syncDir(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Linux: the target's parent directory held open (O_PATH), found by a walk that follows only
 * trusted symlinks, and the last component's name. Every later step (open, create, rename,
 * unlink) names the file relative to that descriptor, so swapping a directory or a link along
 * the path after the check changes nothing; the last component is never followed.
 */
export class ProcWriteTarget implements WriteTarget {
  private closed = false;

  constructor(
    /** The path as requested, for messages. */
    readonly requested: string,
    private readonly dir: HeldDir,
    /** The parent directory's path, every symlink on the way resolved. */
    readonly dirPath: string,
    /** The last component. */
    readonly name: string,
    /** Which paths are on local filesystems (their calls made synchronously). */
    private readonly mounts: LocalMounts,
    /** The walk reached the directory through local filesystems only (walkDirectory). */
    private readonly dirLocal: boolean,
  ) {}

  /** Calls on `name` in the directory may be synchronous: both filesystems are local. */
  private syncFor(name: string): boolean {
    return this.dirLocal && this.mounts.isLocal(posix.join(this.dirPath, name));
  }

  /** The target's filesystem, and its directory's, are local. */
  get local(): boolean {
    return this.syncFor(this.name);
  }

  /** The target's path, its parent's symlinks resolved. */
  get path(): string {
    return posix.join(this.dirPath, this.name);
  }

  /** A name in the checked directory, as a path the kernel looks up in that very directory. */
  entry(name = this.name): string {
    return at(this.dir, name);
  }

  /** lstat of a name in the checked directory; undefined when there is none. */
  async lstat(name = this.name): Promise<Stats | undefined> {
    try {
      return await lstatOf(this.entry(name), this.syncFor(name));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') {
        return undefined;
      }
      throw toAgentOpError(err, `checking ${quotePath(posix.join(this.dirPath, name))}`);
    }
  }

  /** The refusal for a symbolic link in the last component. */
  linkRefused(): AgentOpError {
    return pathNotAllowed(
      `path ${quotePath(this.requested)} is a symbolic link; writes do not follow a symbolic link in the last component`,
    );
  }

  /** The last component as it is now (undefined: absent); refuses a symbolic link. */
  async checkNotLink(): Promise<Stats | undefined> {
    const st = await this.lstat();
    if (st?.isSymbolicLink()) {
      throw this.linkRefused();
    }
    return st;
  }

  /**
   * Refuses unless the directory is still at the path it was checked at (not moved, not
   * removed). A path that names the same directory leads through no link that changed, so this
   * re-checks the whole parent chain at once.
   */
  async checkDirInPlace(): Promise<void> {
    const now = await openedPath(this.dir);
    if (now !== this.dirPath) {
      throw pathNotAllowed(
        `path ${quotePath(this.requested)}: directory ${quotePath(this.dirPath)} was moved or replaced while in use (it is now ${quotePath(now)})`,
      );
    }
  }

  /** Refuses unless `handle` is the file `name` of the checked directory, where it was checked. */
  async checkOpened(handle: { readonly fd: number }, name = this.name): Promise<void> {
    const expected = posix.join(this.dirPath, name);
    const now = await openedPath(handle);
    if (now !== expected) {
      throw pathNotAllowed(
        `path ${quotePath(this.requested)}: the file opened is ${quotePath(now)}, not ${quotePath(expected)}; something was moved or replaced while it was opened`,
      );
    }
  }

  emptyDirectory(st: Stats, name = this.name): Promise<number> {
    return emptyDirectory(this.entry(name), posix.join(this.dirPath, name), st.dev);
  }

  /** fsync of the directory (the held descriptor is O_PATH, which cannot be synced). */
  async syncDir(): Promise<void> {
    const handle = await open(at(this.dir, '.'), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.dir.close();
    }
  }
}

/**
 * Opens the parent directory of `requested` (absolute and normalised) by walking it one
 * component at a time from `/`, each looked up in the directory held before it. A symbolic link
 * on the way is followed only if it is owned by one of `trustedUids` (root and the agent's own
 * uid): the agent writes as root on an operator's behalf, so a link any other user planted must
 * not choose where that write lands (fs.protected_symlinks, but for every directory). The last
 * component must not be a symbolic link at all.
 */
export async function openWriteTarget(
  requested: string,
  trustedUids: readonly number[],
  /** The operation acts on a link itself, never through it (delete, rename, mkdir). */
  lastComponentLink: 'refuse' | 'allow' = 'refuse',
  /** Where calls may be made synchronously (the table is read again here). */
  mounts: LocalMounts = SYSTEM_MOUNTS,
): Promise<WriteTarget> {
  const name = posix.basename(requested);
  if (name === '') {
    throw new AgentOpError(
      ErrorCode.INVALID_REQUEST,
      `path ${quotePath(requested)} is a directory`,
    );
  }
  await checkProc();
  mounts.refresh();
  const { dir, dirPath, dirLocal } = await walkDirectory(
    requested,
    posix.dirname(requested),
    trustedUids,
    mounts,
  );
  const target = new ProcWriteTarget(requested, dir, dirPath, name, mounts, dirLocal);
  try {
    await target.checkDirInPlace();
    if (lastComponentLink === 'refuse') {
      await target.checkNotLink();
    }
  } catch (err) {
    await target.close();
    throw toAgentOpError(err, `checking ${quotePath(requested)}`);
  }
  return target;
}

async function walkDirectory(
  requested: string,
  path: string,
  trustedUids: readonly number[],
  mounts: LocalMounts,
): Promise<{ dir: HeldDir; dirPath: string; dirLocal: boolean }> {
  const q = quotePath(requested);
  const pending = path.split('/').filter((s) => s !== '');
  let walked: string[] = [];
  let hops = 0;
  // Each look-up is synchronous while the directory held and the entry looked at (a mount
  // point crossed included) are on local filesystems.
  let dirLocal = mounts.isLocal('/');
  let dir = await openDir('/', dirLocal);
  const moveTo = async (next: HeldDir): Promise<void> => {
    const previous = dir;
    dir = next;
    await previous.close();
  };
  try {
    while (pending.length > 0) {
      const name = pending.shift() as string;
      if (name === '.') {
        continue;
      }
      if (name === '..') {
        // Only link targets have "..": the parent of a directory reached through no link.
        walked.pop();
        dirLocal = dirLocal && mounts.isLocal(posix.join('/', ...walked));
        await moveTo(await openDir(at(dir, '..'), dirLocal));
        continue;
      }
      const here = posix.join('/', ...walked, name);
      const sync = dirLocal && mounts.isLocal(here);
      let st: Stats;
      try {
        st = await lstatOf(at(dir, name), sync);
      } catch (err) {
        throw walkError(err, requested, here);
      }
      if (st.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) {
          throw pathNotAllowed(`path ${q} has too many levels of symbolic links`);
        }
        if (!trustedUids.includes(st.uid)) {
          throw pathNotAllowed(
            `path ${q}: symbolic link ${quotePath(here)} is owned by uid ${st.uid}; writes follow only symbolic links owned by ${describeOwners(trustedUids)}`,
          );
        }
        const link = await readlinkOf(at(dir, name), sync);
        // The link read must be the link checked. Node has no readlinkat(fd, ""), so compare
        // before and after; ctime catches a link renamed away and back meanwhile (rename
        // updates it), which the inode number alone would miss.
        const again = await lstatOf(at(dir, name), sync).catch(() => undefined);
        if (
          !again?.isSymbolicLink() ||
          !isSameFile(st, again) ||
          again.uid !== st.uid ||
          again.ctimeMs !== st.ctimeMs
        ) {
          throw pathNotAllowed(`path ${q}: ${quotePath(here)} changed while it was being checked`);
        }
        if (link.startsWith('/')) {
          dirLocal = mounts.isLocal('/');
          await moveTo(await openDir('/', dirLocal));
          walked = [];
        }
        pending.unshift(...link.split('/').filter((s) => s !== ''));
        continue;
      }
      if (!st.isDirectory()) {
        throw new AgentOpError(
          ErrorCode.NOT_FOUND,
          `path ${q}: ${quotePath(here)} is not a directory`,
        );
      }
      try {
        await moveTo(await openDir(at(dir, name), sync));
        dirLocal = sync;
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENOENT') {
          throw pathNotAllowed(`path ${q}: ${quotePath(here)} changed while it was being checked`);
        }
        throw walkError(err, requested, here);
      }
      walked.push(name);
    }
    return { dir, dirPath: posix.join('/', ...walked), dirLocal };
  } catch (err) {
    await dir.close().catch(() => undefined);
    throw err;
  }
}

function walkError(err: unknown, requested: string, here: string): AgentOpError {
  switch (errnoOf(err)) {
    case 'ENOENT':
      return new AgentOpError(
        ErrorCode.NOT_FOUND,
        `path ${quotePath(requested)}: directory ${quotePath(here)} does not exist`,
      );
    case 'ENOTDIR':
      return new AgentOpError(
        ErrorCode.NOT_FOUND,
        `path ${quotePath(requested)}: ${quotePath(posix.dirname(here))} is not a directory`,
      );
    default:
      return toAgentOpError(err, `path ${quotePath(requested)}: checking ${quotePath(here)}`);
  }
}
