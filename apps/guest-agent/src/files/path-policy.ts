import { lstat, readlink, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { ErrorCode } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';

export const MAX_PATH_BYTES = 4096;

// Linux gives up after 40 symlinks (ELOOP); so do we when following dangling links by hand.
const MAX_SYMLINK_HOPS = 40;

/** JSON-quoted for messages (shows NUL and control characters), cut short for huge paths. */
export function quotePath(path: string): string {
  return JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
}

function notAllowed(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.PATH_NOT_ALLOWED, message);
}

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
export async function resolveExisting(path: string): Promise<string> {
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
      rest.unshift(posix.basename(prefix));
      prefix = posix.dirname(prefix);
      try {
        real = await realpath(prefix);
      } catch (err) {
        if (!isMissing(err) || prefix === '/') {
          throw err;
        }
      }
    }
    const first = posix.join(real, rest[0] ?? '');
    let isLink: boolean;
    try {
      isLink = (await lstat(first)).isSymbolicLink();
    } catch (err) {
      if (isMissing(err)) {
        return posix.join(real, ...rest);
      }
      throw err;
    }
    // Either a dangling link or something that appeared meanwhile: resolve again.
    candidate = isLink
      ? posix.join(posix.resolve(real, await readlink(first)), ...rest.slice(1))
      : posix.join(real, ...rest);
  }
  throw notAllowed(`path ${quotePath(path)} has too many levels of symbolic links`);
}

/**
 * Decides whether a requested path may be used: the lexical rules of PROTOCOL.md §6 (absolute,
 * normalised, no NUL, ≤ 4096 bytes), then containment in a root both as written and after
 * resolving symlinks. check() returns the resolved path, so the operation acts on exactly the
 * file that was checked (a symlink inside a root is followed, one leading out is refused).
 */
export class PathPolicy {
  private readonly roots: string[];
  // Real paths of roots that existed when first seen; kept so a root later swapped for a
  // symlink cannot widen what is allowed.
  private readonly realRoots = new Map<string, string>();

  constructor(roots: readonly string[]) {
    if (roots.length === 0) {
      throw new Error('PathPolicy needs at least one root');
    }
    this.roots = roots.map((r) => posix.resolve(r));
  }

  async check(path: string): Promise<string> {
    checkLexical(path);
    if (!this.roots.some((root) => isInside(path, root))) {
      throw notAllowed(`path ${quotePath(path)} is outside the allowed roots (${this.describe()})`);
    }
    let resolved: string;
    try {
      resolved = await resolveExisting(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
        throw notAllowed(`path ${quotePath(path)} has too many levels of symbolic links`);
      }
      throw toAgentOpError(err, `resolving path ${quotePath(path)}`);
    }
    if (this.roots.includes('/')) {
      return resolved;
    }
    const realRoots = await this.resolveRoots();
    if (!realRoots.some((root) => isInside(resolved, root))) {
      throw notAllowed(
        `path ${quotePath(path)} resolves to ${quotePath(resolved)}, outside the allowed roots (${this.describe()})`,
      );
    }
    return resolved;
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
          return resolveExisting(root).catch(() => root);
        }
      }),
    );
  }
}

/** One-off check; handlers keep a PathPolicy so root resolution is cached. */
export function checkPath(path: string, roots: readonly string[]): Promise<string> {
  return new PathPolicy(roots).check(path);
}
