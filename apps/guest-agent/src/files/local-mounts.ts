import { readFileSync } from 'node:fs';
import { isLocalFsType, parseMounts } from '../quiesce/mounts.js';

interface MountPoint {
  /** The mount point with a trailing `/` (`/` itself as is), for prefix tests. */
  prefix: string;
  local: boolean;
}

/**
 * Which paths lie on a local filesystem (isLocalFsType), by the mount table: there a file
 * write's lookups and its write are made synchronously, each a few µs, where a trip through the
 * runtime's thread pool costs 20–50 µs and a 1 MiB write made about twenty of them. Anywhere
 * else (nfs, cifs, fuse, 9p, virtiofs… or a path the table does not place) they stay
 * asynchronous, so a server that does not answer never blocks the agent.
 *
 * The table is read again on every refresh() (from /proc, a few µs; never blocks) and parsed
 * again only when its text changed, so a mount made a moment ago is seen.
 */
export class LocalMounts {
  private text: string | undefined;
  /** Longest first; of two at one point, the one mounted last (it hides the other). */
  private points: MountPoint[] = [];

  constructor(
    /** /proc/self/mounts, or a test's table; undefined: every path is taken as not local. */
    private readonly file: string | undefined,
  ) {}

  /** Reads the table again; a table that cannot be read makes every path not local. */
  refresh(): this {
    if (this.file === undefined) {
      return this;
    }
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      text = '';
    }
    if (text !== this.text) {
      this.text = text;
      this.points = parseMounts(text)
        .map((m, order) => ({
          prefix: m.mountPoint.endsWith('/') ? m.mountPoint : `${m.mountPoint}/`,
          local: isLocalFsType(m.fsType),
          order,
        }))
        .sort((a, b) => b.prefix.length - a.prefix.length || b.order - a.order)
        .map(({ prefix, local }) => ({ prefix, local }));
    }
    return this;
  }

  /**
   * Whether `path` (absolute, normalised, its links resolved) is on a local filesystem: the one
   * mounted at the longest mount point that contains it, or at the path itself.
   */
  isLocal(path: string): boolean {
    const probe = path.endsWith('/') ? path : `${path}/`;
    for (const point of this.points) {
      if (probe.startsWith(point.prefix)) {
        return point.local;
      }
    }
    return false;
  }
}
