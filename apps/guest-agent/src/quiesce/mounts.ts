import { statfsSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';

export interface Mount {
  device: string;
  mountPoint: string;
  fsType: string;
  readOnly: boolean;
}

/** /proc/self/mounts escapes space, tab, newline and backslash as octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function readMounts(file: string): Promise<Mount[]> {
  return parseMounts(await readFile(file, 'utf8'));
}

/** The lines of /proc/self/mounts (fstab(5) fields; the last two ignored). */
export function parseMounts(text: string): Mount[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [device = '', mountPoint = '', fsType = '', options = ''] = line.split(' ');
      return {
        device: unescape(device),
        mountPoint: unescape(mountPoint),
        fsType,
        readOnly: options.split(',').includes('ro'),
      };
    });
}

const PSEUDO = new Set([
  'proc',
  'sysfs',
  'devpts',
  'cgroup',
  'cgroup2',
  'securityfs',
  'debugfs',
  'tracefs',
  'mqueue',
  'hugetlbfs',
  'pstore',
  'bpf',
  'configfs',
  'fusectl',
  'autofs',
  'binfmt_misc',
  'rpc_pipefs',
  'devtmpfs',
  'efivarfs',
  'nsfs',
  'selinuxfs',
]);

export function isPseudo(m: Mount): boolean {
  return PSEUDO.has(m.fsType);
}

/** The filesystems a Quiesce without mount points freezes: writable, of a freezable type, one per device. */
export function freezableMounts(mounts: Mount[], types: string[]): Mount[] {
  const seen = new Set<string>();
  return mounts.filter((m) => {
    if (m.readOnly || !types.includes(m.fsType) || seen.has(m.device)) {
      return false;
    }
    seen.add(m.device);
    return true;
  });
}

// Filesystems whose statfs(2) the kernel answers from memory (superblock counters), never
// waiting on a device or a server: these are asked synchronously, which costs about 2 µs where
// a trip through the thread pool costs 20–40. Anything else (nfs, cifs, fuse, ceph…) can hang
// on its server and is asked through the pool, so it never blocks the agent.
const LOCAL_STATFS = new Set([
  'ext2',
  'ext3',
  'ext4',
  'xfs',
  'btrfs',
  'tmpfs',
  'ramfs',
  'vfat',
  'exfat',
  'overlay',
  'squashfs',
  'iso9660',
  'f2fs',
  'jfs',
  'reiserfs',
]);

/**
 * A filesystem whose calls wait on nothing but memory or a local device (never on a server
 * that may not answer): what the agent may call synchronously.
 */
export function isLocalFsType(fsType: string): boolean {
  return LOCAL_STATFS.has(fsType);
}

export type Usage = { total: number; used: number };

/** Size and use of a mounted filesystem; zeros when it cannot be asked. */
export function usage(mountPoint: string, fsType?: string): Usage | Promise<Usage> {
  if (fsType !== undefined && LOCAL_STATFS.has(fsType)) {
    try {
      return usageOf(statfsSync(mountPoint));
    } catch {
      return { total: 0, used: 0 };
    }
  }
  return statfs(mountPoint).then(usageOf, () => ({ total: 0, used: 0 }));
}

function usageOf(s: { blocks: number; bfree: number; bsize: number }): Usage {
  return { total: s.blocks * s.bsize, used: (s.blocks - s.bfree) * s.bsize };
}
