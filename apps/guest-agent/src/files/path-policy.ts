import { type FileHandle, lstat, readlink, realpath } from 'node:fs/promises';
import { type PlatformPath, posix, win32 } from 'node:path';
import { ErrorCode, type FileLimits } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { pathNotAllowed as notAllowed, quotePath } from './path-errors.js';
import { openedPath, openWriteTarget, type WriteTarget } from './write-target.js';
import {
  NODE_WINDOWS_FS,
  openWindowsWriteTarget,
  sameWindowsPath,
  windowsOpenedPath,
  type WindowsFs,
} from './windows-write-target.js';
import { checkWindowsPath, isInsideWindowsRoot } from '../os/windows-paths.js';

export { quotePath } from './path-errors.js';
export type { WriteTarget } from './write-target.js';

export const MAX_PATH_BYTES = 4096;

// Linux gives up after 40 symlinks (ELOOP); so do we when following dangling links by hand.
const MAX_SYMLINK_HOPS = 40;

function isInside(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(`${root}/`);
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The lexical rules: everything that can be decided without touching the filesystem. */
function checkLexical(path: string): void {
  if (typeof path !== 'string' || path.length === 0) {
    throw notAllowed('path must be a non-empty string');
  }
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) {
    throw notAllowed(`path ${quotePath(path)} is longer than ${MAX_PATH_BYTES} bytes`);
  }
  if (path.includes('\0')) {
    throw notAllowed(`path ${quotePath(path)} must not contain NUL`);
  }
  if (!path.startsWith('/')) {
    throw notAllowed(`path ${quotePath(path)} must be absolute`);
  }
  if (path === '/') {
    return;
  }
  const segments = path.split('/');
  if (segments.some((s) => s === '.' || s === '..')) {
    throw notAllowed(`path ${quotePath(path)} must be normalised (no "." or ".." segments)`);
  }
  if (path.endsWith('/')) {
    throw notAllowed(`path ${quotePath(path)} must be normalised (no trailing "/")`);
  }
  if (path.includes('//')) {
    throw notAllowed(`path ${quotePath(path)} must be normalised (no "//")`);
  }
  if (posix.normalize(path) !== path) {
    throw notAllowed(`path ${quotePath(path)} must be normalised`);
  }
}

/**
 * Resolves the symlinks of the longest existing prefix of an absolute, normalised path; the
 * missing rest is appended as is. A dangling symlink is followed by hand, because creating a
 * file through it would land wherever it points.
 */
export async function resolveExisting(path: string, paths: PlatformPath = posix): Promise<string> {
  let candidate = path;
  for (let hops = 0; hops <= MAX_SYMLINK_HOPS; hops++) {
    try {
      return await realpath(candidate);
    } catch (err) {
      if (!isMissing(err)) {
        throw err;
      }
    }
    const rest: string[] = [];
    let prefix = candidate;
    let real: string | undefined;
    while (real === undefined) {
      rest.unshift(paths.basename(prefix));
      prefix = paths.dirname(prefix);
      try {
        real = await realpath(prefix);
      } catch (err) {
        if (!isMissing(err) || prefix === paths.dirname(prefix)) {
          throw err;
        }
      }
    }
    const first = paths.join(real, rest[0] ?? '');
    let isLink: boolean;
    try {
      isLink = (await lstat(first)).isSymbolicLink();
    } catch (err) {
      if (isMissing(err)) {
        return paths.join(real, ...rest);
      }
      throw err;
    }
    // Either a dangling link or something that appeared meanwhile: resolve again.
    candidate = isLink
      ? paths.join(paths.resolve(real, await readlink(first)), ...rest.slice(1))
      : paths.join(real, ...rest);
  }
  throw notAllowed(`path ${quotePath(path)} has too many levels of symbolic links`);
}

/** The lexical half of a path policy: what differs between Linux and Windows paths. */
export interface PathRules {
  /** Throws PATH_NOT_ALLOWED naming the rule a path breaks. */
  checkLexical(path: string): void;
  isInside(path: string, root: string): boolean;
  /** A root as configured, made canonical. */
  canonicalRoot(root: string): string;
  /** Whether the policy allows the whole filesystem (no containment check needed). */
  isEverything(root: string): boolean;
  /** The OS's path functions (dirname, join…). */
  paths: PlatformPath;
  /** Whether two resolved paths name the same place (Windows: case-insensitively). */
  samePath(a: string, b: string): boolean;
  /** The filesystem's root, which is never deleted or renamed (Linux `/`; Windows none). */
  isFilesystemRoot(path: string): boolean;
  /**
   * Where the file a handle holds is, every link resolved: Linux asks /proc/self/fd; Windows
   * resolves the path it was opened by and requires the same file there (windowsOpenedPath).
   */
  openedPath(handle: FileHandle, openedBy: string): Promise<string>;
  /** The place of a write, its parent resolved (the policy checks it against the roots). */
  openWriteTarget(
    requested: string,
    trustedUids: readonly number[],
    lastComponentLink: 'refuse' | 'allow',
  ): Promise<WriteTarget>;
  /** A path that reads the directory `handle` holds (opened from `resolved`, checked). */
  listingPath(handle: FileHandle, resolved: string): string;
  /** A name inside a directory path (listingPath's). */
  child(dir: string, name: string): string;
  /** The absolute paths from the top down to `path` itself (mkdir with parents). */
  ancestors(path: string): string[];
  /** Whether files have Unix owners (uid, gid) and modes the agent can set. */
  unixOwners: boolean;
  /**
   * Why a caller with run-as limits (FileLimits.no_setid) may not change files on this OS;
   * undefined where the write rules and no_setid are enough (Linux).
   */
  restrictedWriteRefusal?: string;
}

export const LINUX_PATH_RULES: PathRules = {
  checkLexical,
  isInside,
  canonicalRoot: (root) => posix.resolve(root),
  isEverything: (root) => root === '/',
  paths: posix,
  samePath: (a, b) => a === b,
  isFilesystemRoot: (path) => path === '/',
  openedPath: (handle) => openedPath(handle),
  openWriteTarget,
  listingPath: (handle) => `/proc/self/fd/${handle.fd}`,
  child: (dir, name) => `${dir}/${name}`,
  ancestors: (path) => {
    const parts = path.split('/').filter((s) => s !== '');
    return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
  },
  unixOwners: true,
};

export const WINDOWS_RESTRICTED_WRITES =
  'a caller with run-as limits may not change files on Windows guests: the agent runs as LocalSystem and would write with its rights, and writing as the caller needs LogonUserW/CreateProcessAsUserW (or impersonation), which the agent does not do yet (WINDOWS.md, "Who may write")';

/** Drive-letter paths; a root of `C:\` still confines to drive C. */
export const WINDOWS_PATH_RULES = (
  allowUnc: boolean,
  /** The filesystem calls of the checks (a double in unit tests). */
  fs: WindowsFs = NODE_WINDOWS_FS,
): PathRules => ({
  checkLexical: (path) => void checkWindowsPath(path, { allowUnc }),
  isInside: isInsideWindowsRoot,
  canonicalRoot: (root) => {
    const trimmed = root.replace(/\\+$/, '');
    return /^[A-Za-z]:$/.test(trimmed) ? `${trimmed}\\` : trimmed;
  },
  isEverything: () => false,
  paths: win32,
  samePath: sameWindowsPath,
  isFilesystemRoot: (path) => win32.dirname(path) === path,
  openedPath: (handle, openedBy) => windowsOpenedPath(handle, openedBy, fs),
  openWriteTarget: (requested, _trustedUids, lastComponentLink) =>
    openWindowsWriteTarget(requested, lastComponentLink, fs),
  listingPath: (_handle, resolved) => resolved,
  child: (dir, name) => win32.join(dir, name),
  ancestors: (path) => {
    const out: string[] = [];
    for (let p = path; win32.dirname(p) !== p; p = win32.dirname(p)) {
      out.unshift(p);
    }
    return out;
  },
  unixOwners: false,
  restrictedWriteRefusal: WINDOWS_RESTRICTED_WRITES,
});

/**
 * Decides whether a requested path may be used (PROTOCOL.md §6 Files): the lexical rules
 * (absolute, normalised, no NUL, ≤ 4096 bytes) and containment in a root as written; then
 *  - for reads, check() resolves every symlink and requires the result inside a root, and
 *    checkOpened() requires the same of the file actually opened;
 *  - for writes, openForWrite() holds the parent directory open, reached through symlinks owned
 *    by root or the agent's uid only, refuses a symlink in the last component, and requires the
 *    parent's resolved path inside a root.
 */
export class PathPolicy {
  private readonly roots: string[];
  private readonly trustedUids: number[];
  // Real paths of roots that existed when first seen; kept so a root later swapped for a
  // symlink cannot widen what is allowed.
  private readonly realRoots = new Map<string, string>();

  constructor(
    roots: readonly string[],
    /** Owners whose symlinks writes follow; default root and the agent's own uid. */
    trustedUids: readonly number[] = [0, process.getuid?.() ?? 0],
    private readonly rules: PathRules = LINUX_PATH_RULES,
  ) {
    if (roots.length === 0) {
      throw new Error('PathPolicy needs at least one root');
    }
    this.roots = roots.map((r) => rules.canonicalRoot(r));
    this.trustedUids = [...new Set(trustedUids)];
  }

  /** The rules that need no filesystem: lexical, and inside a root as written. */
  checkRequested(path: string): void {
    this.rules.checkLexical(path);
    if (!this.roots.some((root) => this.rules.isInside(path, root))) {
      throw notAllowed(`path ${quotePath(path)} is outside the allowed roots (${this.describe()})`);
    }
  }

  /** For reads: the path with every symlink resolved, inside a root. */
  async check(path: string): Promise<string> {
    this.checkRequested(path);
    let resolved: string;
    try {
      resolved = await resolveExisting(path, this.rules.paths);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
        throw notAllowed(`path ${quotePath(path)} has too many levels of symbolic links`);
      }
      throw toAgentOpError(err, `resolving path ${quotePath(path)}`);
    }
    await this.checkResolved(path, resolved);
    return resolved;
  }

  /**
   * For reads, after the open: the file actually opened is inside a root, so a link swapped in
   * between check() and the open cannot lead out of them.
   */
  async checkOpened(path: string, handle: FileHandle): Promise<void> {
    if (this.everything()) {
      return;
    }
    let opened: string;
    try {
      opened = await this.rules.openedPath(handle, path);
    } catch (err) {
      throw toAgentOpError(err, `checking where ${quotePath(path)} was opened`);
    }
    await this.checkResolved(path, opened);
  }

  /**
   * For writes: the checked place of the write (see WriteTarget), its parent inside a root.
   * The caller closes it.
   */
  async openForWrite(
    path: string,
    lastComponentLink: 'refuse' | 'allow' = 'refuse',
  ): Promise<WriteTarget> {
    this.checkRequested(path);
    const target = await this.rules.openWriteTarget(path, this.trustedUids, lastComponentLink);
    try {
      await this.checkResolved(path, target.path);
    } catch (err) {
      await target.close();
      throw err;
    }
    return target;
  }

  /**
   * A write place another policy opened (the agent's own roots) held to this policy's roots as
   * well: a caller's narrower FileLimits.
   */
  async checkWriteTarget(path: string, target: WriteTarget): Promise<void> {
    this.checkRequested(path);
    await this.checkResolved(path, target.path);
  }

  /**
   * Whether a path is `/` or one of the roots (as written, or `resolved` is a root's real
   * path): what a delete or a rename must never take away.
   */
  async isRoot(path: string, resolved: string): Promise<boolean> {
    const { rules } = this;
    if (rules.isFilesystemRoot(path) || rules.isFilesystemRoot(resolved)) {
      return true;
    }
    if (this.roots.some((root) => rules.samePath(root, path))) {
      return true;
    }
    return (await this.resolveRoots()).some((root) => rules.samePath(root, resolved));
  }

  /** The OS's path functions and rules (dirname, ancestors, listing paths…). */
  get os(): PathRules {
    return this.rules;
  }

  /** Refuses uid/gid where files have no Unix owners (Windows: SIDs). */
  checkOwnerIds(request: { uid?: number; gid?: number }): void {
    if (!this.rules.unixOwners && (request.uid !== undefined || request.gid !== undefined)) {
      throw new AgentOpError(
        ErrorCode.UNSUPPORTED,
        'uid and gid are Unix ids; files on this guest are owned by Windows accounts (SIDs), and a file the agent creates is owned by the Administrators group',
      );
    }
  }

  /** A policy for a caller's narrower roots (FileLimits.roots) with this one's rules. */
  narrowed(roots: readonly string[]): PathPolicy {
    return new PathPolicy(roots, this.trustedUids, this.rules);
  }

  /**
   * Refuses a change to files by a caller this OS cannot hold to its limits (Windows: one with
   * run-as limits; WINDOWS.md). Linux: nothing to refuse.
   */
  checkWriter(limits: FileLimits | undefined): void {
    if (limits?.noSetid && this.rules.restrictedWriteRefusal !== undefined) {
      throw new AgentOpError(ErrorCode.UNSUPPORTED, this.rules.restrictedWriteRefusal);
    }
  }

  private everything(): boolean {
    return this.roots.some((root) => this.rules.isEverything(root));
  }

  private async checkResolved(path: string, resolved: string): Promise<void> {
    if (this.everything()) {
      return;
    }
    const realRoots = await this.resolveRoots();
    if (!realRoots.some((root) => this.rules.isInside(resolved, root))) {
      throw notAllowed(
        `path ${quotePath(path)} resolves to ${quotePath(resolved)}, outside the allowed roots (${this.describe()})`,
      );
    }
  }

  private describe(): string {
    return this.roots.join(', ');
  }

  private async resolveRoots(): Promise<string[]> {
    return Promise.all(
      this.roots.map(async (root) => {
        const known = this.realRoots.get(root);
        if (known !== undefined) {
          return known;
        }
        try {
          const real = await realpath(root);
          this.realRoots.set(root, real);
          return real;
        } catch {
          // A root that does not exist yet can only hold what gets created under it.
          return resolveExisting(root, this.rules.paths).catch(() => root);
        }
      }),
    );
  }
}

/** One-off read check; handlers keep a PathPolicy so root resolution is cached. */
export function checkPath(path: string, roots: readonly string[]): Promise<string> {
  return new PathPolicy(roots).check(path);
}
