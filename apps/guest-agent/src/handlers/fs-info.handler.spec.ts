import { describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GetFsInfoResponse } from '@lq/proto';
import { defaultConfig } from '../config.js';
import { GetFsInfoHandler } from './fs-info.handler.js';

const MOUNTS = fileURLToPath(
  new URL('../telemetry/__fixtures__/proc/self/mounts', import.meta.url),
);

async function fsInfo(handler: GetFsInfoHandler): Promise<GetFsInfoResponse> {
  const r = await handler.handle();
  if (r.case !== 'getFsInfoResponse') {
    throw new Error(`unexpected ${r.case}`);
  }
  return r.value;
}

describe('GetFsInfoHandler', () => {
  it('should leave pseudo filesystems out and follow the mount table as it changes', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'lq-fs-info-'));
    try {
      const mounts = join(dir, 'mounts');
      copyFileSync(MOUNTS, mounts);
      const config = defaultConfig();
      config.quiesce.mounts_file = mounts;
      const handler = new GetFsInfoHandler(config);

      const first = await fsInfo(handler);
      const points = first.filesystems.map((f) => f.mountPoint);
      expect(points).toContain('/');
      expect(points).toContain('/srv/my data');
      expect(points).not.toContain('/proc');
      expect(points).not.toContain('/sys/fs/cgroup');
      const rootFs = first.filesystems.find((f) => f.mountPoint === '/')!;
      expect(rootFs).toMatchObject({ fsType: 'ext4', freezable: true, readOnly: false });
      // "/" exists here, so the local (synchronous) statfs gives it a size; a mount point that
      // does not exist has zeros.
      expect(rootFs.totalBytes).toBeGreaterThan(0n);
      expect(first.filesystems.find((f) => f.mountPoint === '/mnt/nfs')?.totalBytes).toBe(0n);

      writeFileSync(mounts, '/dev/vda1 / ext4 ro,relatime 0 0\n');
      const second = await fsInfo(handler);
      expect(second.filesystems).toHaveLength(1);
      expect(second.filesystems[0]).toMatchObject({ mountPoint: '/', readOnly: true });
      expect(second.filesystems[0]!.freezable).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
