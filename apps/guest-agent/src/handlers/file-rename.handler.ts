import { rename } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { ErrorCode, FileRenameResponseSchema, type AgentPayload } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { FileLimitPolicies } from '../files/file-limits.js';
import { pathNotAllowed } from '../files/path-errors.js';
import { PathPolicy, quotePath, type WriteTarget } from '../files/path-policy.js';
import type { OperationHandler, RequestOf } from './handler.js';

/**
 * file.rename: moves a file, a link (itself) or a directory. Both paths by the write rules
 * (parents held open, inside the roots); the rename names both in their held directories.
 * An existing target is refused unless `overwrite`, and a directory is never replaced.
 */
export class FileRenameHandler implements OperationHandler<'fileRename'> {
  readonly requestCase = 'fileRename';

  constructor(
    private readonly paths: PathPolicy,
    private readonly limits: FileLimitPolicies,
  ) {}

  async handle(request: RequestOf<'fileRename'>): Promise<AgentPayload> {
    const from = quotePath(request.from);
    const to = quotePath(request.to);
    for (const p of [request.from, request.to]) {
      if (p === '/') {
        throw pathNotAllowed('refusing to rename "/"');
      }
    }
    this.paths.checkWriter(request.limits);
    const narrow = this.limits.policyOf(request.limits);
    narrow?.checkRequested(request.from);
    narrow?.checkRequested(request.to);
    const targets: WriteTarget[] = [];
    try {
      const source = await this.paths.openForWrite(request.from, 'allow');
      targets.push(source);
      const dest = await this.paths.openForWrite(request.to, 'allow');
      targets.push(dest);
      await narrow?.checkWriteTarget(request.from, source);
      await narrow?.checkWriteTarget(request.to, dest);
      for (const [path, t] of [
        [request.from, source],
        [request.to, dest],
      ] as const) {
        if ((await this.paths.isRoot(path, t.path)) || (await narrow?.isRoot(path, t.path))) {
          throw pathNotAllowed(
            `refusing to rename ${quotePath(path)}: it is one of the allowed roots`,
          );
        }
      }
      const st = await source.lstat();
      if (!st) {
        throw new AgentOpError(ErrorCode.NOT_FOUND, `path ${from} does not exist`);
      }
      const existing = await dest.lstat();
      if (existing) {
        if (existing.isDirectory()) {
          throw new AgentOpError(
            ErrorCode.ALREADY_EXISTS,
            `${to} is an existing directory; a rename never replaces a directory`,
          );
        }
        if (!request.overwrite) {
          throw new AgentOpError(
            ErrorCode.ALREADY_EXISTS,
            `${to} exists already; set overwrite to replace it`,
          );
        }
      }
      await source.checkDirInPlace();
      await dest.checkDirInPlace();
      await rename(source.entry(), dest.entry());
      return { case: 'fileRenameResponse', value: create(FileRenameResponseSchema, {}) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EXDEV') {
        throw new AgentOpError(
          ErrorCode.INVALID_REQUEST,
          `${from} and ${to} are on different filesystems; a rename cannot move between them`,
        );
      }
      if (code === 'EINVAL') {
        throw new AgentOpError(
          ErrorCode.INVALID_REQUEST,
          `cannot move ${from} into itself (${to})`,
        );
      }
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EISDIR' || code === 'ENOTDIR') {
        throw new AgentOpError(
          ErrorCode.ALREADY_EXISTS,
          `cannot rename ${from} onto ${to}: ${code}`,
        );
      }
      throw toAgentOpError(err, `renaming ${from} to ${to}`);
    } finally {
      await Promise.all(targets.map((t) => t.close()));
    }
  }
}
