import type { Stats } from 'node:fs';
import { constants, type FileHandle, open } from 'node:fs/promises';
import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import { type PathPolicy, quotePath } from './path-policy.js';

/** A regular file opened for reading under the read rules, and its stat at the open. */
export interface OpenedForRead {
  handle: FileHandle;
  stat: Stats;
}

/**
 * Opens `path` read-only under the read rules of PROTOCOL.md §6 Files (file.read, file.open):
 * the agent's roots and the caller's narrower ones, symlinks resolved, and the file actually
 * opened checked to be inside both; a regular file only. The caller closes it.
 */
export async function openForRead(
  path: string,
  paths: PathPolicy,
  narrow: PathPolicy | undefined,
): Promise<OpenedForRead> {
  const resolved = await paths.check(path);
  await narrow?.check(path);
  // O_NONBLOCK: opening a FIFO must not park a libuv thread waiting for a writer.
  const handle = await open(resolved, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    // Reads follow links, but what was opened must be inside the roots, whatever was swapped
    // in between the check and the open.
    await paths.checkOpened(path, handle);
    await narrow?.checkOpened(path, handle);
    const stat = await handle.stat();
    if (stat.isDirectory()) {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, `path ${quotePath(path)} is a directory`);
    }
    if (!stat.isFile()) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `path ${quotePath(path)} is not a regular file`,
      );
    }
    return { handle, stat };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
