import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalMounts } from './local-mounts.js';

describe('LocalMounts', () => {
  let dir: string;
  let table: string;
  const write = (lines: string[]): void => writeFileSync(table, `${lines.join('\n')}\n`);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lq-mounts-'));
    table = join(dir, 'mounts');
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('should place a path on the filesystem of the longest mount point that holds it', () => {
    write([
      '/dev/vda1 / ext4 rw 0 0',
      'srv:/export /mnt/nfs nfs4 rw 0 0',
      '/dev/vdb1 /mnt/nfs/cache xfs rw 0 0',
      'tmpfs /mnt/nfsish tmpfs rw 0 0',
    ]);
    const mounts = new LocalMounts(table).refresh();
    expect(
      ['/', '/etc/x', '/mnt/nfs', '/mnt/nfs/a/b', '/mnt/nfs/cache/f', '/mnt/nfsish/f'].map((p) =>
        mounts.isLocal(p),
      ),
    ).toEqual([true, true, false, false, true, true]);
  });

  it('should take the filesystem mounted last where two share a mount point', () => {
    write(['/dev/vda1 / ext4 rw 0 0', '/dev/vdb1 /data ext4 rw 0 0', 'h:/d /data cifs rw 0 0']);
    expect(new LocalMounts(table).refresh().isLocal('/data/f')).toBe(false);
  });

  it('should not take fuse, 9p, virtiofs or an unknown type as local', () => {
    write([
      '/dev/vda1 / ext4 rw 0 0',
      'sshfs#h: /a fuse.sshfs rw 0 0',
      'share /b 9p rw 0 0',
      'tag /c virtiofs rw 0 0',
      'x /d someotherfs rw 0 0',
    ]);
    const mounts = new LocalMounts(table).refresh();
    expect(['/a/f', '/b/f', '/c/f', '/d/f', '/e/f'].map((p) => mounts.isLocal(p))).toEqual([
      false,
      false,
      false,
      false,
      true,
    ]);
  });

  it('should unescape mount points with spaces', () => {
    write(['/dev/vda1 / nfs rw 0 0', '/dev/vdb1 /my\\040disk ext4 rw 0 0']);
    const mounts = new LocalMounts(table).refresh();
    expect([mounts.isLocal('/my disk/f'), mounts.isLocal('/my/f')]).toEqual([true, false]);
  });

  it('should see a mount made since the last refresh', () => {
    write(['/dev/vda1 / ext4 rw 0 0']);
    const mounts = new LocalMounts(table).refresh();
    expect(mounts.isLocal('/mnt/share/f')).toBe(true);
    write(['/dev/vda1 / ext4 rw 0 0', 'srv:/e /mnt/share nfs rw 0 0']);
    expect(mounts.refresh().isLocal('/mnt/share/f')).toBe(false);
  });

  it('should take nothing as local when the table cannot be read or there is none', () => {
    expect(new LocalMounts(join(dir, 'missing')).refresh().isLocal('/')).toBe(false);
    expect(new LocalMounts(undefined).refresh().isLocal('/')).toBe(false);
  });
});
