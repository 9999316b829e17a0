import { randomBytes } from 'node:crypto';
import { chmod, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Removes what is at `path` (a socket a stopped agent left), if anything. */
export async function removeStale(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') {
      throw err;
    }
  });
}

/**
 * A listening socket that appears at `path` only once it listens, with mode 0600: bound under a
 * temporary name beside it, chmod-ed, then renamed into place. A host that connects as soon as
 * the path exists is never refused, and no one else can connect in between. What a stopped agent
 * left at `path` is removed first. `bind` listens on the name it is given (throwing, or
 * rejecting, when it cannot).
 */
export async function bindPrivately<T extends { close(): unknown }>(
  path: string,
  bind: (path: string) => T | Promise<T>,
): Promise<T> {
  await removeStale(path);
  const temp = join(dirname(path), `.lq-${process.pid}-${randomBytes(4).toString('hex')}`);
  await removeStale(temp);
  let bound: T;
  try {
    bound = await bind(temp);
  } catch {
    // The temporary name may not fit where the path just does (108 bytes): bind in place.
    const inPlace = await bind(path);
    await chmod(path, 0o600);
    return inPlace;
  }
  try {
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (err) {
    await bound.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  return bound;
}
