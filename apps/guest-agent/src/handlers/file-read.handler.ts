import { create } from '@bufbuild/protobuf';
import { type AgentPayload, ErrorCode, FileReadResponseSchema } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { readFully, toSafeOffset } from '../files/file-io.js';
import { FileLimitPolicies } from '../files/file-limits.js';
import { PathPolicy, quotePath } from '../files/path-policy.js';
import { openForRead } from '../files/read-open.js';
import type { PooledBuffer } from '../memory/buffer-pool.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/**
 * file.read: one chunk of a regular file at an offset. `mode` in the response is the whole
 * st_mode (file type bits and permission bits, as stat(2)); `mode & 0o7777` is the permissions.
 */
export class FileReadHandler implements OperationHandler<'fileRead'> {
  readonly requestCase = 'fileRead';

  constructor(
    private readonly config: AgentConfig,
    private readonly paths: PathPolicy = new PathPolicy(config.files.roots),
    private readonly limits: FileLimitPolicies = new FileLimitPolicies(),
  ) {}

  async handle(request: RequestOf<'fileRead'>, ctx?: HandlerContext): Promise<AgentPayload> {
    const chunkMax = this.config.files.chunk_max_bytes;
    if (request.length > chunkMax) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `length ${request.length} is more than files.chunk_max_bytes (${chunkMax})`,
      );
    }
    const length = request.length === 0 ? chunkMax : request.length;
    const offset = toSafeOffset(request.offset);
    if (offset === undefined) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `offset ${request.offset} is beyond ${Number.MAX_SAFE_INTEGER}`,
      );
    }
    // The caller's own roots, if it brought narrower ones, with the same rules.
    const narrow = this.limits.policyOf(request.limits);

    let chunk: PooledBuffer | undefined;
    try {
      const { handle, stat: st } = await openForRead(request.path, this.paths, narrow);
      try {
        // procfs and sysfs files report size 0 (or a page) whatever they hold: read `length`
        // and let a short read say where they end.
        const want = st.size === 0 ? length : Math.min(length, Math.max(0, st.size - offset));
        // A pooled chunk buffer, given back once the reply carrying it has been written.
        chunk = ctx?.buffers?.acquire(want);
        if (chunk) {
          const loan = chunk;
          ctx!.afterReply(() => loan.release());
        }
        let data: Buffer = chunk?.buf ?? Buffer.allocUnsafe(want);
        const bytesRead = want === 0 ? 0 : await readFully(handle, data, offset);
        if (bytesRead < want) {
          data = data.subarray(0, bytesRead);
        }
        return {
          case: 'fileReadResponse',
          value: create(FileReadResponseSchema, {
            data,
            eof: bytesRead < want || (st.size > 0 && offset + bytesRead >= st.size),
            totalSize: BigInt(st.size),
            mode: st.mode,
            offset: request.offset,
            mtimeMs: BigInt(Math.trunc(st.mtimeMs)),
          }),
        };
      } finally {
        await handle.close();
      }
    } catch (err) {
      chunk?.release(); // no reply will carry it
      throw toAgentOpError(err, `reading ${quotePath(request.path)}`);
    }
  }
}
