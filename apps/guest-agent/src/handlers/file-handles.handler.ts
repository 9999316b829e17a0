import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  FileCloseResponseSchema,
  FileOpenResponseSchema,
  FileReadResponseSchema,
  type AgentPayload,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { readFully, readFullySync, toSafeOffset } from '../files/file-io.js';
import { type FileHandleTable, isOnLocalFilesystem } from '../files/file-handles.js';
import type { FileLimitPolicies } from '../files/file-limits.js';
import { type PathPolicy, quotePath } from '../files/path-policy.js';
import { openForRead } from '../files/read-open.js';
import type { PooledBuffer } from '../memory/buffer-pool.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/** Handle reads up to this size are made synchronously on local filesystems. */
const SYNC_READ_MAX_BYTES = 64 * 1024;

/** file.open: a regular file opened under the read rules, kept under a handle. */
export class FileOpenHandler implements OperationHandler<'fileOpen'> {
  readonly requestCase = 'fileOpen' as const;

  constructor(
    private readonly config: AgentConfig,
    private readonly handles: FileHandleTable,
    private readonly paths: PathPolicy,
    private readonly limits: FileLimitPolicies,
  ) {}

  async handle(request: RequestOf<'fileOpen'>): Promise<AgentPayload> {
    const release = this.handles.reserve();
    try {
      const narrow = this.limits.policyOf(request.limits);
      const opened = await openForRead(request.path, this.paths, narrow);
      const local = await isOnLocalFilesystem(opened.handle);
      const file = this.handles.add(
        release,
        { path: request.path, ...opened, local },
        request.limits,
      );
      return {
        case: 'fileOpenResponse',
        value: create(FileOpenResponseSchema, {
          handle: file.id,
          totalSize: BigInt(file.stat.size),
          mode: file.stat.mode,
          mtimeMs: BigInt(Math.trunc(file.stat.mtimeMs)),
          idleTimeoutMs: this.config.files.handle_idle_timeout_ms,
        }),
      };
    } catch (err) {
      release();
      throw toAgentOpError(err, `opening ${quotePath(request.path)}`);
    }
  }
}

/**
 * file.handle.read: up to `length` bytes of an open handle, at `offset` or at its position. No
 * path is checked again: the handle is the file that was checked at the open.
 */
export class FileHandleReadHandler implements OperationHandler<'fileHandleRead'> {
  readonly requestCase = 'fileHandleRead' as const;

  constructor(
    private readonly config: AgentConfig,
    private readonly handles: FileHandleTable,
  ) {}

  async handle(request: RequestOf<'fileHandleRead'>, ctx?: HandlerContext): Promise<AgentPayload> {
    const chunkMax = this.config.files.chunk_max_bytes;
    if (request.length > chunkMax) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `length ${request.length} is more than files.chunk_max_bytes (${chunkMax})`,
      );
    }
    const length = request.length === 0 ? chunkMax : request.length;
    const at = request.offset === undefined ? undefined : toSafeOffset(request.offset);
    if (request.offset !== undefined && at === undefined) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `offset ${request.offset} is beyond ${Number.MAX_SAFE_INTEGER}`,
      );
    }
    return this.handles.use(request.handle, request.limits, async (file) => {
      // The position moves now, so reads pipelined on one handle take consecutive chunks.
      const offset = at ?? file.position;
      file.position = offset + length;
      // A pooled chunk buffer, given back once the reply carrying it has been written.
      const chunk: PooledBuffer | undefined = ctx?.buffers?.acquire(length);
      try {
        let data: Buffer = chunk?.buf ?? Buffer.allocUnsafe(length);
        // Small reads of a local file are made at once: from the page cache that takes a few
        // µs, where a trip through the thread pool costs tens (qemu-ga reads every chunk on its
        // one thread). Larger ones, and files a server holds, go through the pool.
        const bytesRead =
          file.local && length <= SYNC_READ_MAX_BYTES
            ? readFullySync(file.handle.fd, data, offset)
            : await readFully(file.handle, data, offset);
        if (bytesRead < length) {
          data = data.subarray(0, bytesRead);
          if (file.position === offset + length) {
            file.position = offset + bytesRead;
          }
        }
        if (chunk) {
          ctx!.afterReply(() => chunk.release());
        }
        return {
          case: 'fileHandleReadResponse',
          value: create(FileReadResponseSchema, {
            data,
            // A short read is the end (the file may have grown since the open: no size check).
            eof: bytesRead < length,
            totalSize: BigInt(file.stat.size),
            mode: file.stat.mode,
            offset: BigInt(offset),
            mtimeMs: BigInt(Math.trunc(file.stat.mtimeMs)),
          }),
        };
      } catch (err) {
        chunk?.release(); // no reply will carry it
        throw toAgentOpError(err, `reading file handle ${file.id} (${quotePath(file.path)})`);
      }
    });
  }
}

/** file.close: closes a handle; `closed` is false when it was not open. */
export class FileCloseHandler implements OperationHandler<'fileClose'> {
  readonly requestCase = 'fileClose' as const;

  constructor(private readonly handles: FileHandleTable) {}

  async handle(request: RequestOf<'fileClose'>): Promise<AgentPayload> {
    const closed = await this.handles.closeFor(request.handle, request.limits);
    return { case: 'fileCloseResponse', value: create(FileCloseResponseSchema, { closed }) };
  }
}
