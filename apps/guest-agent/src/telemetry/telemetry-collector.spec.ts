import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type * as os from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../config.js';
import { type FsStats, parseMounts, TelemetryCollector } from './telemetry-collector.js';

const PROC_FIXTURE = fileURLToPath(new URL('./__fixtures__/proc', import.meta.url));

const GiB = 1024n ** 3n;
const STATFS: FsStats = {
  bsize: 4096n,
  blocks: (10n * GiB) / 4096n,
  bfree: (4n * GiB) / 4096n,
  bavail: (3n * GiB) / 4096n,
};

const interfaces = (): NodeJS.Dict<os.NetworkInterfaceInfo[]> => ({
  lo: [
    {
      family: 'IPv4',
      address: '127.0.0.1',
      cidr: '127.0.0.1/8',
      mac: '00:00:00:00:00:00',
      netmask: '255.0.0.0',
      internal: true,
    },
  ],
  eth0: [
    {
      family: 'IPv4',
      address: '10.0.0.5',
      cidr: '10.0.0.5/24',
      mac: '52:54:00:12:34:56',
      netmask: '255.255.255.0',
      internal: false,
    },
  ],
});

describe('TelemetryCollector', () => {
  let proc: string;
  let statfsCalls: string[];

  function collector(
    statfs: (path: string) => Promise<FsStats> = (path) => {
      statfsCalls.push(path);
      return Promise.resolve(STATFS);
    },
    statfsTimeoutMs = 2000,
  ): TelemetryCollector {
    const config = defaultConfig();
    config.system.proc_dir = proc;
    return new TelemetryCollector(config, undefined, {
      statfs,
      networkInterfaces: interfaces,
      statfsTimeoutMs,
    });
  }

  beforeEach(async () => {
    proc = await mkdtemp(join(tmpdir(), 'lq-proc-'));
    await cp(PROC_FIXTURE, proc, { recursive: true });
    for (const pid of ['1', '42', '4242', 'sys', 'tty', 'x1']) {
      await mkdir(join(proc, pid), { recursive: true });
    }
    statfsCalls = [];
  });

  afterEach(async () => {
    await rm(proc, { recursive: true, force: true });
  });

  it('should report every section from the proc files when they are all present', async () => {
    const report = await collector().sample();
    expect(report).toMatchObject({
      cpuPercent: 0,
      cpuCount: 2,
      load1: 0.52,
      load5: 0.34,
      load15: 0.17,
      processCount: 3,
      uptimeSeconds: 12345.67,
      memory: {
        totalBytes: 4028596n * 1024n,
        availableBytes: 3028596n * 1024n,
        usedBytes: 1000000n * 1024n,
        swapTotalBytes: 2097148n * 1024n,
        swapUsedBytes: 1048574n * 1024n,
      },
    });
    expect(report.network.map((n) => n.name)).toEqual(['eth0', 'ens5']);
    expect(report.network[0]).toMatchObject({
      rxBytes: 123456789012n,
      rxPackets: 987654n,
      txBytes: 98765432n,
      txPackets: 123456n,
    });
    expect(report.interfaces.map((i) => [i.name, i.ipv4])).toEqual([['eth0', ['10.0.0.5/24']]]);
  });

  it('should report local disks once per device when mounts include pseudo and remote ones', async () => {
    const report = await collector().sample();
    expect(report.disks.map((d) => [d.mountPoint, d.device, d.fsType])).toEqual([
      ['/', '/dev/vda1', 'ext4'],
      ['/boot/efi', '/dev/vda15', 'vfat'],
      ['/srv/my data', '/dev/vdb1', 'xfs'],
      ['/var/lib/docker/overlay2/abc/merged', 'overlay', 'overlay'],
    ]);
    expect(report.disks[0]).toMatchObject({
      totalBytes: 10n * GiB,
      usedBytes: 6n * GiB,
      availableBytes: 3n * GiB,
    });
    expect(statfsCalls).toHaveLength(4);
  });

  it('should compute cpu_percent from the delta when a second sample follows', async () => {
    const c = collector();
    await c.sample();
    await writeFile(
      join(proc, 'stat'),
      'cpu  1300 0 600 8500 600 0 0 0 0 0\ncpu0 1 1 1 1\ncpu1 1 1 1 1\n',
    );
    const report = await c.sample();
    // total 10000 → 11000, idle+iowait 8500 → 9100: 400 busy of 1000.
    expect(report.cpuPercent).toBeCloseTo(40, 6);
  });

  it('should leave a disk out when its statfs fails', async () => {
    const report = await collector((path) =>
      path === '/boot/efi'
        ? Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' }))
        : Promise.resolve(STATFS),
    ).sample();
    expect(report.disks.map((d) => d.mountPoint)).not.toContain('/boot/efi');
    expect(report.disks).toHaveLength(3);
  });

  it('should not wait for or repeat a statfs when it hangs', async () => {
    let hungCalls = 0;
    const c = collector((path) => {
      if (path === '/srv/my data') {
        hungCalls++;
        return new Promise<FsStats>(() => undefined);
      }
      return Promise.resolve(STATFS);
    }, 30);
    const first = await c.sample();
    const second = await c.sample();
    expect(first.disks).toHaveLength(3);
    expect(second.disks).toHaveLength(3);
    expect(hungCalls).toBe(1);
  });

  it('should report zeros instead of failing when the proc files are missing', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'lq-proc-empty-'));
    try {
      const config = defaultConfig();
      config.system.proc_dir = empty;
      const report = await new TelemetryCollector(config, undefined, {
        networkInterfaces: () => ({}),
      }).sample();
      expect(report).toMatchObject({ cpuCount: 0, processCount: 0, uptimeSeconds: 0, disks: [] });
      expect(report.memory?.totalBytes).toBe(0n);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('should sample this machine when reading the real /proc', async () => {
    const c = new TelemetryCollector(defaultConfig());
    await c.sample();
    const report = await c.sample();
    expect(report.cpuCount).toBeGreaterThan(0);
    expect(report.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(report.cpuPercent).toBeLessThanOrEqual(100);
    expect(report.memory?.totalBytes).toBeGreaterThan(0n);
    expect(report.processCount).toBeGreaterThan(0);
    expect(report.uptimeSeconds).toBeGreaterThan(0);
    expect(report.disks.length).toBeGreaterThan(0);
    expect(report.disks.every((d) => d.totalBytes >= d.usedBytes)).toBe(true);
    expect(report.disks.some((d) => d.fsType === 'tmpfs' || d.fsType === 'proc')).toBe(false);
    expect(report.network.some((n) => n.name === 'lo')).toBe(false);
  });
});

describe('parseMounts', () => {
  it('should decode octal escapes when mount fields contain spaces', () => {
    expect(parseMounts('/dev/sda1 /mnt/a\\040b\\134c ext4 rw 0 0\n')).toEqual([
      { device: '/dev/sda1', mountPoint: '/mnt/a b\\c', fsType: 'ext4' },
    ]);
  });
});
