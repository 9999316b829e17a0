import type { Stats } from 'node:fs';
import { FileType } from '@lq/proto';
import type { UserResolver } from '../exec/user-resolver.js';

/** What stat(2) says a file is, as the protocol names it. */
export function fileTypeOf(st: Stats): FileType {
  if (st.isFile()) {
    return FileType.REGULAR;
  }
  if (st.isDirectory()) {
    return FileType.DIRECTORY;
  }
  if (st.isSymbolicLink()) {
    return FileType.SYMLINK;
  }
  if (st.isFIFO()) {
    return FileType.FIFO;
  }
  if (st.isSocket()) {
    return FileType.SOCKET;
  }
  if (st.isCharacterDevice()) {
    return FileType.CHAR_DEVICE;
  }
  return st.isBlockDevice() ? FileType.BLOCK_DEVICE : FileType.UNSPECIFIED;
}

/**
 * The names of owners and groups by id, each looked up once per instance (a listing asks for the
 * same few ids thousands of times). An id the guest has no name for is ''.
 */
export class OwnerNames {
  private readonly users = new Map<number, Promise<string>>();
  private readonly groups = new Map<number, Promise<string>>();

  constructor(private readonly resolver: UserResolver) {}

  user(uid: number): Promise<string> {
    let name = this.users.get(uid);
    if (name === undefined) {
      name = this.resolver.lookupUser(String(uid)).then(
        (u) => (u.source === 'uid' ? '' : u.name),
        () => '',
      );
      this.users.set(uid, name);
    }
    return name;
  }

  group(gid: number): Promise<string> {
    let name = this.groups.get(gid);
    if (name === undefined) {
      name = this.resolver.lookupGroup(String(gid)).then(
        (g) => (g.members.length === 0 && g.name === String(gid) ? '' : g.name),
        () => '',
      );
      this.groups.set(gid, name);
    }
    return name;
  }
}
