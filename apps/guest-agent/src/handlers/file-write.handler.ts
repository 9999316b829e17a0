import { constants } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { type AgentPayload, ErrorCode, FileWriteResponseSchema } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { openFile, toSafeOffset, type WritableFile, writeFully } from '../files/file-io.js';
import { FileLimitPolicies, allowedMode, checkWriteLimits } from '../files/file-limits.js';
import { PathPolicy, quotePath, type WriteTarget } from '../files/path-policy.js';
import type { UploadStore } from '../files/upload-store.js';
import type { OperationHandler, RequestOf } from './handler.js';

const DEFAULT_CREATE_MODE = 0o644;

function invalid(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.INVALID_REQUEST, message);
}

/**
 * file.write: one chunk, either in place (flags as open(2): create, truncate, append) or into an
 * atomic upload named by upload_id (see UploadStore).
 */
export class FileWriteHandler implements OperationHandler<'fileWrite'> {
  readonly requestCase = 'fileWrite';
  // Every write of the chunk (in place or into an upload, the commit's included) is awaited.
  readonly doneWithRequestAtAnswer = true;

  constructor(
    private readonly config: AgentConfig,
    private readonly uploads: UploadStore,
    private readonly paths: PathPolicy = new PathPolicy(config.files.roots),
    private readonly limits: FileLimitPolicies = new FileLimitPolicies(),
  ) {}

  async handle(request: RequestOf<'fileWrite'>): Promise<AgentPayload> {
    const chunkMax = this.config.files.chunk_max_bytes;
    if (request.data.length > chunkMax) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `data is ${request.data.length} bytes, more than files.chunk_max_bytes (${chunkMax})`,
      );
    }
    const offset = toSafeOffset(request.offset);
    if (offset === undefined || offset + request.data.length > Number.MAX_SAFE_INTEGER) {
      throw invalid(`offset ${request.offset} is beyond ${Number.MAX_SAFE_INTEGER}`);
    }
    if (request.uploadId === '' && request.commit) {
      throw invalid('commit needs an upload_id');
    }
    if (request.uploadId !== '' && request.append) {
      throw invalid('append cannot be used with upload_id: upload chunks carry their offset');
    }
    checkWriteLimits(request.limits, request);
    this.paths.checkWriter(request.limits);
    this.paths.checkOwnerIds(request);
    const narrow = this.limits.policyOf(request.limits);
    if (request.uploadId !== '') {
      // The store checks the path when the upload starts and holds its directory from then on.
      this.paths.checkRequested(request.path);
      narrow?.checkRequested(request.path);
      const result = await this.uploads.write({
        narrow,
        noSetid: request.limits?.noSetid === true,
        uploadId: request.uploadId,
        path: request.path,
        offset,
        data: request.data,
        commit: request.commit,
        mode: request.mode,
        uid: request.uid,
        gid: request.gid,
      });
      return response(result.bytesWritten, result.size, result.committed);
    }

    const target = await this.paths.openForWrite(request.path);
    try {
      await narrow?.checkWriteTarget(request.path, target);
      const { handle, created } = await openForWrite(target, request);
      try {
        await target.checkOpened(handle);
        if (!(await handle.stat()).isFile()) {
          throw invalid(`path ${quotePath(request.path)} is not a regular file`);
        }
        // Truncated only now: the file is the one checked, not one swapped in meanwhile.
        if (request.truncate) {
          await handle.truncate(0);
        }
        // chown clears set-id bits, so it goes before chmod; chmod bypasses the umask.
        if (request.uid !== undefined || request.gid !== undefined) {
          await handle.chown(request.uid ?? -1, request.gid ?? -1);
        }
        if (created && request.mode !== undefined) {
          await handle.chmod(allowedMode(request.limits, request.mode));
        }
        await writeFully(handle, request.data, request.append ? null : offset);
        if (request.limits?.noSetid) {
          // Root's writes keep an existing file's set-id bits: a limited caller's may not.
          const { mode } = await handle.stat();
          if ((mode & 0o6000) !== 0) {
            await handle.chmod(allowedMode(request.limits, mode));
          }
        }
        const size = (await handle.stat()).size;
        return response(request.data.length, size, false);
      } finally {
        await handle.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EISDIR') {
        throw invalid(`path ${quotePath(request.path)} is a directory`);
      }
      if (code === 'ENOENT') {
        throw new AgentOpError(
          ErrorCode.NOT_FOUND,
          `path ${quotePath(request.path)} does not exist${request.create ? '' : ' (create is not set)'}`,
        );
      }
      if (code === 'ELOOP') {
        // O_NOFOLLOW met a link that was put there after the check.
        throw target.linkRefused();
      }
      throw toAgentOpError(err, `writing ${quotePath(request.path)}`);
    } finally {
      await target.close();
    }
  }
}

/**
 * Opens the checked target in its held directory, never following a link in the last
 * component (O_NOFOLLOW). O_TRUNC is left to the caller, after it has checked the file opened.
 * On a local filesystem (target.local) the file is opened and used with synchronous calls.
 */
async function openForWrite(
  target: WriteTarget,
  request: RequestOf<'fileWrite'>,
): Promise<{ handle: WritableFile; created: boolean }> {
  // O_NONBLOCK: a FIFO without a reader fails at once instead of parking a libuv thread.
  const flags =
    constants.O_WRONLY |
    constants.O_NONBLOCK |
    constants.O_NOFOLLOW |
    (request.append ? constants.O_APPEND : 0);
  const path = target.entry();
  if (request.create) {
    // O_EXCL first, so the mode is applied only to a file this request created.
    try {
      const mode = (request.mode ?? DEFAULT_CREATE_MODE) & 0o7777;
      const handle = await openFile(
        path,
        flags | constants.O_CREAT | constants.O_EXCL,
        target.local,
        mode,
      );
      return { handle, created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw err;
      }
    }
  }
  return { handle: await openFile(path, flags, target.local), created: false };
}

function response(bytesWritten: number, size: number, committed: boolean): AgentPayload {
  return {
    case: 'fileWriteResponse',
    value: create(FileWriteResponseSchema, {
      bytesWritten: BigInt(bytesWritten),
      size: BigInt(size),
      committed,
    }),
  };
}
