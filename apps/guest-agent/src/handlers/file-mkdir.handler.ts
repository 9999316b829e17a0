import { constants, mkdir, open } from 'node:fs/promises';

import { create } from '@bufbuild/protobuf';
import { ErrorCode, FileMkdirResponseSchema, type AgentPayload, type FileLimits } from '@lq/proto';
import { AgentOpError, toAgentOpError } from '../errors.js';
import { allowedMode, checkWriteLimits, type FileLimitPolicies } from '../files/file-limits.js';
import { PathPolicy, quotePath } from '../files/path-policy.js';
import type { OperationHandler, RequestOf } from './handler.js';

const DEFAULT_DIR_MODE = 0o755;

/**
 * file.mkdir: creates a directory (and with `parents` the missing ones above it) by the write
 * rules: each parent reached through trusted links only, held open, inside the roots; the mode
 * is set on the directory opened without following links, so the umask does not apply and a
 * link swapped in cannot redirect the chmod.
 */
export class FileMkdirHandler implements OperationHandler<'fileMkdir'> {
  readonly requestCase = 'fileMkdir';

  constructor(
    private readonly paths: PathPolicy,
    private readonly limits: FileLimitPolicies,
  ) {}

  async handle(request: RequestOf<'fileMkdir'>): Promise<AgentPayload> {
    const mode = request.mode ?? DEFAULT_DIR_MODE;
    if (mode > 0o7777) {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, `mode ${mode.toString(8)} is not 0–7777`);
    }
    checkWriteLimits(request.limits, { mode });
    this.paths.checkWriter(request.limits);
    this.paths.checkRequested(request.path);
    const narrow = this.limits.policyOf(request.limits);
    narrow?.checkRequested(request.path);
    const created: string[] = [];
    if (request.parents) {
      // Each missing directory from the top down; those above the roots must exist already.
      for (const prefix of this.paths.os.ancestors(request.path)) {
        try {
          this.paths.checkRequested(prefix);
          narrow?.checkRequested(prefix);
        } catch {
          continue;
        }
        if (await this.makeOne(prefix, mode, request.limits, narrow, true)) {
          created.push(prefix);
        }
      }
    } else {
      await this.makeOne(request.path, mode, request.limits, narrow, false);
      created.push(request.path);
    }
    return { case: 'fileMkdirResponse', value: create(FileMkdirResponseSchema, { created }) };
  }

  /** Creates one directory; false when it existed and existing is fine. */
  private async makeOne(
    path: string,
    mode: number,
    limits: FileLimits | undefined,
    narrow: PathPolicy | undefined,
    existingIsFine: boolean,
  ): Promise<boolean> {
    const q = quotePath(path);
    const target = await this.paths.openForWrite(path, 'allow');
    try {
      await narrow?.checkWriteTarget(path, target);
      const st = await target.lstat();
      if (st) {
        // A link to a directory is fine for parents: the next step walks through it by the
        // write rules (trusted owners only).
        if (existingIsFine && (st.isDirectory() || st.isSymbolicLink())) {
          return false;
        }
        throw new AgentOpError(
          ErrorCode.ALREADY_EXISTS,
          `path ${q} exists already${st.isDirectory() ? '' : ' and is not a directory'}`,
        );
      }
      await target.checkDirInPlace();
      try {
        await mkdir(target.entry(), mode);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          if (existingIsFine) {
            return false;
          }
          throw new AgentOpError(ErrorCode.ALREADY_EXISTS, `path ${q} exists already`);
        }
        throw err;
      }
      const dir = await open(
        target.entry(),
        constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
      );
      try {
        await target.checkOpened(dir);
        // Windows: a directory's access is its ACL, inherited from the parent; a mode means
        // nothing there (and fchmod on a directory handle fails).
        if (this.paths.os.unixOwners) {
          await dir.chmod(allowedMode(limits, mode));
        }
      } finally {
        await dir.close();
      }
      return true;
    } catch (err) {
      throw toAgentOpError(err, `creating directory ${q}`);
    } finally {
      await target.close();
    }
  }
}
