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
import { readFully, toSafeOffset } from '../files/file-io.js';
import { type FileHandleTable, isOnLocalFilesystem, type OpenFile } from '../files/file-handles.js';
import type { FileLimitPolicies } from '../files/file-limits.js';
import { type PathPolicy, quotePath } from '../files/path-policy.js';
import { openForRead } from '../files/read-open.js';
import type { PooledBuffer } from '../memory/buffer-pool.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/** Reads up to this size of a local file are made at once even with sync_read_slow_ms 0. */
const SMALL_READ_MAX_BYTES = 64 * 1024;

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
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Any read, through the thread pool with the handle held (small local reads too, without the
   * read-ahead). The dispatcher comes here only when handleNow() declined (a file a server
   * holds, a handle whose reads wait on its disk, a large read with sync_read_slow_ms 0;
   * file.handle.read is not retained), so handleNow() is not tried again: that was a second
   * validation and handle lookup on every such read.
   */
  async handle(request: RequestOf<'fileHandleRead'>, ctx?: HandlerContext): Promise<AgentPayload> {
    const { length, at } = this.checked(request);
    return this.handles.use(request.handle, request.limits, async (file) => {
      const offset = this.advance(file, at, length);
      const chunk = ctx?.buffers?.acquire(length);
      const data = chunk?.buf ?? Buffer.allocUnsafe(length);
      let bytesRead: number;
      try {
        bytesRead = await readFully(file.handle, data, offset);
      } catch (err) {
        throw readFailed(file, chunk, err);
      }
      return replyOf(file, offset, length, data, bytesRead, chunk, ctx);
    });
  }

  /**
   * A read of a local file, made at once: from the page cache a 4 KiB read takes a few µs and a
   * 1 MiB one a few hundred, where a trip through the thread pool costs tens to hundreds more
   * (qemu-ga reads every chunk on its one thread). Nothing yields until the reply is made, so no
   * close can come in between. A read slower than files.sync_read_slow_ms marks the handle
   * (readsWait). Undefined for files a server holds, handles so marked, and reads over 64 KiB
   * when sync_read_slow_ms is 0: handle() reads those through the pool, the handle held
   * meanwhile.
   */
  handleNow(request: RequestOf<'fileHandleRead'>, ctx?: HandlerContext): AgentPayload | undefined {
    const { length, at } = this.checked(request);
    const file = this.handles.useNow(request.handle, request.limits);
    const slowMs = this.config.files.sync_read_slow_ms;
    if (!file.local || file.readsWait || (slowMs === 0 && length > SMALL_READ_MAX_BYTES)) {
      return undefined;
    }
    const offset = this.advance(file, at, length);
    const chunk = ctx?.buffers?.acquire(length);
    const data = chunk?.buf ?? Buffer.allocUnsafe(length);
    let bytesRead: number;
    const started = this.now();
    try {
      bytesRead = file.readAhead.readInto(file.handle.fd, data, offset);
    } catch (err) {
      throw readFailed(file, chunk, err);
    }
    if (slowMs > 0 && this.now() - started > slowMs) {
      file.readsWait = true;
    }
    return replyOf(file, offset, length, data, bytesRead, chunk, ctx);
  }

  /** The request's length (0: files.chunk_max_bytes) and offset, or why they are refused. */
  private checked(request: RequestOf<'fileHandleRead'>): { length: number; at?: number } {
    const chunkMax = this.config.files.chunk_max_bytes;
    if (request.length > chunkMax) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `length ${request.length} is more than files.chunk_max_bytes (${chunkMax})`,
      );
    }
    const length = request.length === 0 ? chunkMax : request.length;
    if (request.offset === undefined) {
      return { length };
    }
    const at = toSafeOffset(request.offset);
    if (at === undefined) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `offset ${request.offset} is beyond ${Number.MAX_SAFE_INTEGER}`,
      );
    }
    return { length, at };
  }

  /**
   * Where a read starts (`at`, or the handle's position); the position moves past it now, so
   * reads pipelined on one handle take consecutive chunks.
   */
  private advance(file: OpenFile, at: number | undefined, length: number): number {
    const offset = at ?? file.position;
    file.position = offset + length;
    return offset;
  }
}

/**
 * A read's reply; its chunk buffer (pooled) is given back once the reply carrying it has been
 * written.
 */
function replyOf(
  file: OpenFile,
  offset: number,
  length: number,
  data: Buffer,
  bytesRead: number,
  chunk: PooledBuffer | undefined,
  ctx: HandlerContext | undefined,
): AgentPayload {
  if (chunk) {
    ctx!.afterReply(chunk.release);
  }
  if (bytesRead < length && file.position === offset + length) {
    file.position = offset + bytesRead;
  }
  return {
    case: 'fileHandleReadResponse',
    value: create(FileReadResponseSchema, {
      data: bytesRead < length ? data.subarray(0, bytesRead) : data,
      // A short read is the end (the file may have grown since the open: no size check).
      eof: bytesRead < length,
      totalSize: BigInt(file.stat.size),
      mode: file.stat.mode,
      offset: BigInt(offset),
      mtimeMs: BigInt(Math.trunc(file.stat.mtimeMs)),
    }),
  };
}

/** A failed read's error; its chunk buffer goes back to the pool (no reply will carry it). */
function readFailed(file: OpenFile, chunk: PooledBuffer | undefined, err: unknown): AgentOpError {
  chunk?.release();
  return toAgentOpError(err, `reading file handle ${file.id} (${quotePath(file.path)})`);
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
