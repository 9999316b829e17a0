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
  const text = await readFile(file, 'utf8');
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

export async function usage(mountPoint: string): Promise<{ total: number; used: number }> {
  try {
    const s = await statfs(mountPoint);
    return { total: s.blocks * s.bsize, used: (s.blocks - s.bfree) * s.bsize };
  } catch {
    return { total: 0, used: 0 };
  }
}
