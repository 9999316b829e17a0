import { constants, open, type FileHandle } from 'node:fs/promises';
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  ErrorCode,
  FileEntrySchema,
  FileListResponseSchema,
  type AgentPayload,
  type FileEntry,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { UserResolver } from '../exec/user-resolver.js';
import { readDirectoryPage } from '../files/directory-page.js';
import { openDirectoryStream } from '../files/directory-stream.js';
import type { FileLimitPolicies } from '../files/file-limits.js';
import type { FileOwner, FileOwnerSource } from '../files/file-owners.js';
import { fileTypeOf, OwnerNames } from '../files/file-type.js';
import { PathPolicy, quotePath } from '../files/path-policy.js';
import type { OperationHandler, RequestOf } from './handler.js';

// What a page may add to the frame besides its entries (the envelope, the cursor, the path).
const FRAME_SLACK = 64 * 1024;
// Bytes of an encoded entry besides its strings (type, sizes, ids, time, field tags).
const ENTRY_OVERHEAD = 64;
const NAME_MAX = 255;

/**
 * file.list: one page of a directory's entries, sorted by name, after a cursor (the last name of
 * the previous page). The directory is reached by the read rules, opened, checked where it
 * really is, and read through that descriptor; each entry is described by lstat, links never
 * followed. Each page streams the directory once and keeps only the page's names
 * (readDirectoryPage), so the agent's memory is the page's, whatever the directory's size.
 */
export class FileListHandler implements OperationHandler<'fileList'> {
  readonly requestCase = 'fileList';

  constructor(
    private readonly config: AgentConfig,
    private readonly paths: PathPolicy,
    private readonly limits: FileLimitPolicies,
    private readonly users: UserResolver,
    /** Where owners are not uid/gid (Windows): one lookup for a page. */
    private readonly ownerSource?: FileOwnerSource,
  ) {}

  async handle(request: RequestOf<'fileList'>): Promise<AgentPayload> {
    const { list_page_entries: pageDefault, list_max_entries: pageMax } = this.config.files;
    if (request.limit > pageMax) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `limit ${request.limit} is more than files.list_max_entries (${pageMax})`,
      );
    }
    if (Buffer.byteLength(request.cursor, 'utf8') > 4 * NAME_MAX || request.cursor.includes('/')) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        'cursor must be a name from a previous page (no "/", at most 1020 bytes)',
      );
    }
    const limit = request.limit === 0 ? pageDefault : request.limit;
    const narrow = this.limits.policyOf(request.limits);
    const q = quotePath(request.path);
    let handle: FileHandle | undefined;
    try {
      const resolved = await this.paths.check(request.path);
      await narrow?.check(request.path);
      handle = await open(resolved, constants.O_RDONLY | constants.O_DIRECTORY);
      // The directory opened is the one inside the roots, whatever was swapped in meanwhile.
      await this.paths.checkOpened(request.path, handle);
      await narrow?.checkOpened(request.path, handle);
      const rules = this.paths.os;
      const here = rules.listingPath(handle, resolved);
      const page = await readDirectoryPage(await openDirectoryStream(here), request.cursor, limit);
      const owners = new OwnerNames(this.users);
      // Windows: the page's owners from the security descriptors, in one lookup.
      const found = this.ownerSource
        ? await this.ownerSource.ownersOf(page.names.map((name) => rules.child(here, name)))
        : undefined;
      const budget = this.config.max_frame_bytes - FRAME_SLACK;
      const entries: FileEntry[] = [];
      let bytes = 0;
      let cut = false;
      for (const [i, name] of page.names.entries()) {
        if (i % 512 === 511) {
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const entry = await describe(rules.child(here, name), name, owners, found?.[i]);
        if (!entry) {
          continue; // removed since the pass
        }
        const size =
          ENTRY_OVERHEAD +
          Buffer.byteLength(name) +
          Buffer.byteLength(entry.linkTarget) +
          entry.owner.length +
          entry.group.length;
        if (bytes + size > budget && entries.length > 0) {
          cut = true;
          break;
        }
        bytes += size;
        entries.push(entry);
      }
      const more = cut || page.more;
      return {
        case: 'fileListResponse',
        value: create(FileListResponseSchema, {
          entries,
          nextCursor: more && entries.length > 0 ? entries[entries.length - 1]!.name : '',
          totalEntries: BigInt(page.total),
          resolvedPath: resolved,
        }),
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') {
        throw new AgentOpError(ErrorCode.INVALID_REQUEST, `path ${q} is not a directory`);
      }
      throw toAgentOpError(err, `listing ${q}`);
    } finally {
      await handle?.close();
    }
  }
}

async function describe(
  path: string,
  name: string,
  owners: OwnerNames,
  found: FileOwner | undefined,
): Promise<FileEntry | undefined> {
  // Synchronous: one lstat is a few microseconds, a thread-pool round trip each costs more than
  // the call (the caller yields every 512 entries).
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw err;
  }
  let linkTarget = '';
  if (st.isSymbolicLink()) {
    try {
      linkTarget = readlinkSync(path);
    } catch {
      // removed or replaced since the lstat: described without its target
    }
  }
  const [owner, group] = found
    ? [found.owner, found.group]
    : await Promise.all([owners.user(st.uid), owners.group(st.gid)]);
  return create(FileEntrySchema, {
    name,
    type: fileTypeOf(st),
    size: BigInt(st.size),
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    owner,
    group,
    modifiedAt: timestampFromMs(Math.trunc(st.mtimeMs)),
    linkTarget,
  });
}
