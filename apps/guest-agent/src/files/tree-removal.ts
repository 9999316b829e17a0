import { constants, lstat, open, rmdir, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import { openDirectoryStream } from './directory-stream.js';
import { pathNotAllowed, quotePath } from './path-errors.js';

// Names read from a directory before removing them; the directory is read again until empty,
// so memory is this batch whatever the directory's size.
const BATCH = 1024;
// Directories held open at once on the way down (one descriptor each).
export const MAX_TREE_DEPTH = 256;

/**
 * Removes everything inside the directory `entry` names (a `/proc/self/fd/<dir>/<name>` path:
 * looked up in a held directory), leaving it empty. Every directory on the way is opened with
 * O_NOFOLLOW relative to the one above it, so a link swapped in for a directory is refused,
 * never followed; a directory on another filesystem than `dev` (a mount point) is refused, like
 * `rm --one-file-system`. Returns how many entries were removed.
 */
export async function emptyDirectory(
  entry: string,
  display: string,
  dev: number,
  depth = 0,
): Promise<number> {
  if (depth >= MAX_TREE_DEPTH) {
    throw new AgentOpError(
      ErrorCode.TOO_LARGE,
      `${quotePath(display)} is nested more than ${MAX_TREE_DEPTH} directories deep`,
    );
  }
  let handle;
  try {
    handle = await open(entry, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw pathNotAllowed(`${quotePath(display)} changed while it was being deleted`);
    }
    throw err;
  }
  let removed = 0;
  try {
    if ((await handle.stat()).dev !== dev) {
      throw pathNotAllowed(
        `${quotePath(display)} is on another filesystem (a mount point); a recursive delete does not cross into it`,
      );
    }
    const here = `/proc/self/fd/${handle.fd}`;
    for (;;) {
      const names: string[] = [];
      const dir = await openDirectoryStream(here);
      try {
        for (let name = dir.next(); name !== null && names.length < BATCH; name = dir.next()) {
          names.push(name);
        }
      } finally {
        dir.close();
      }
      if (names.length === 0) {
        return removed;
      }
      for (const name of names) {
        const child = `${here}/${name}`;
        const shown = posix.join(display, name);
        let st;
        try {
          st = await lstat(child);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            continue;
          }
          throw err;
        }
        if (st.isDirectory()) {
          removed += await emptyDirectory(child, shown, dev, depth + 1);
          await rmdir(child);
        } else {
          await unlink(child);
        }
        removed++;
      }
    }
  } finally {
    await handle.close();
  }
}
