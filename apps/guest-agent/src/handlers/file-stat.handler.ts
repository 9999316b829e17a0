import { lstat, readlink, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { FileStatResponseSchema, type AgentPayload } from '@lq/proto';
import { toAgentOpError } from '../errors.js';
import type { UserResolver } from '../exec/user-resolver.js';
import type { FileLimitPolicies } from '../files/file-limits.js';
import type { FileOwnerSource } from '../files/file-owners.js';
import { fileTypeOf } from '../files/file-type.js';
import { PathPolicy, quotePath } from '../files/path-policy.js';
import type { OperationHandler, RequestOf } from './handler.js';

/**
 * file.stat: a file's metadata (type, size, mode, owner, times, link target). Reads' rules: the
 * path is resolved and must end inside the roots (and the caller's FileLimits); with no_follow
 * the link itself is described, its directory resolved and checked.
 */
export class FileStatHandler implements OperationHandler<'fileStat'> {
  readonly requestCase = 'fileStat';

  constructor(
    private readonly paths: PathPolicy,
    private readonly limits: FileLimitPolicies,
    private readonly users: UserResolver,
    /** Where owners are not uid/gid (Windows: the security descriptor's). */
    private readonly owners?: FileOwnerSource,
  ) {}

  async handle(request: RequestOf<'fileStat'>): Promise<AgentPayload> {
    const narrow = this.limits.policyOf(request.limits);
    let st: Stats;
    let target = '';
    let described: string;
    const paths = this.paths.os.paths;
    try {
      if (request.noFollow) {
        this.paths.checkRequested(request.path);
        narrow?.checkRequested(request.path);
        const dir = paths.dirname(request.path);
        const resolvedDir = await this.paths.check(dir);
        await narrow?.check(dir);
        const entry = paths.join(resolvedDir, paths.basename(request.path));
        st = await lstat(entry);
        target = st.isSymbolicLink() ? await readlink(entry) : '';
        described = entry;
      } else {
        const resolved = await this.paths.check(request.path);
        await narrow?.check(request.path);
        st = await stat(resolved);
        described = resolved;
      }
    } catch (err) {
      throw toAgentOpError(err, `stat ${quotePath(request.path)}`);
    }
    const { owner, group } = this.owners
      ? ((await this.owners.ownersOf([described]))[0] ?? { owner: '', group: '' })
      : await this.unixOwner(st);
    return {
      case: 'fileStatResponse',
      value: create(FileStatResponseSchema, {
        type: fileTypeOf(st),
        size: BigInt(st.size),
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        owner,
        group,
        accessedAt: timestampFromMs(Math.trunc(st.atimeMs)),
        modifiedAt: timestampFromMs(Math.trunc(st.mtimeMs)),
        changedAt: timestampFromMs(Math.trunc(st.ctimeMs)),
        links: BigInt(st.nlink),
        linkTarget: target,
      }),
    };
  }

  private async unixOwner(st: Stats): Promise<{ owner: string; group: string }> {
    const [owner, group] = await Promise.all([
      this.users.lookupUser(String(st.uid)).then(
        (u) => (u.source === 'uid' ? '' : u.name),
        () => '',
      ),
      this.users.lookupGroup(String(st.gid)).then(
        (g) => (g.members.length === 0 && g.name === String(st.gid) ? '' : g.name),
        () => '',
      ),
    ]);
    return { owner, group };
  }
}
