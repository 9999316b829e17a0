import { rmdir, unlink } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { ErrorCode, FileDeleteResponseSchema, type AgentPayload } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { FileLimitPolicies } from '../files/file-limits.js';
import { pathNotAllowed } from '../files/path-errors.js';
import { PathPolicy, quotePath } from '../files/path-policy.js';
import type { OperationHandler, RequestOf } from './handler.js';

/**
 * file.delete: a file, a link (never what it points to) or an empty directory; a directory with
 * contents only with `recursive`. The write rules reach the parent (trusted links only, held
 * open, inside the roots); `/` and the roots themselves are refused.
 */
export class FileDeleteHandler implements OperationHandler<'fileDelete'> {
  readonly requestCase = 'fileDelete';

  constructor(
    private readonly paths: PathPolicy,
    private readonly limits: FileLimitPolicies,
  ) {}

  async handle(request: RequestOf<'fileDelete'>): Promise<AgentPayload> {
    const q = quotePath(request.path);
    if (request.path === '/') {
      throw pathNotAllowed('refusing to delete "/"');
    }
    this.paths.checkWriter(request.limits);
    const narrow = this.limits.policyOf(request.limits);
    narrow?.checkRequested(request.path);
    const target = await this.paths.openForWrite(request.path, 'allow');
    try {
      await narrow?.checkWriteTarget(request.path, target);
      if (
        (await this.paths.isRoot(request.path, target.path)) ||
        (await narrow?.isRoot(request.path, target.path))
      ) {
        throw pathNotAllowed(`refusing to delete ${q}: it is one of the allowed roots`);
      }
      const st = await target.lstat();
      if (!st) {
        throw new AgentOpError(ErrorCode.NOT_FOUND, `path ${q} does not exist`);
      }
      await target.checkDirInPlace();
      let removed = 1;
      if (st.isDirectory()) {
        if (request.recursive) {
          removed += await target.emptyDirectory(st);
        }
        await rmdir(target.entry());
      } else {
        await unlink(target.entry());
      }
      return {
        case: 'fileDeleteResponse',
        value: create(FileDeleteResponseSchema, { removed: BigInt(removed) }),
      };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new AgentOpError(
          ErrorCode.INVALID_REQUEST,
          `directory ${q} is not empty; set recursive to delete it with its contents`,
        );
      }
      if (code === 'EBUSY') {
        throw new AgentOpError(ErrorCode.INVALID_REQUEST, `${q} is in use (a mount point?)`);
      }
      throw toAgentOpError(err, `deleting ${q}`);
    } finally {
      await target.close();
    }
  }
}
