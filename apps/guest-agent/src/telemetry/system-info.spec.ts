import { describe, expect, it } from '@jest/globals';
import * as os from 'node:os';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig } from '../config.js';
import {
  collectAgentInfo,
  cachedOsInfo,
  collectOsInfo,
  interfaceFilter,
  listInterfaces,
  parseOsRelease,
  readOsRelease,
} from './system-info.js';

const OS_RELEASE = fileURLToPath(new URL('./__fixtures__/os-release', import.meta.url));

function addr(
  family: 'IPv4' | 'IPv6',
  cidr: string,
  mac = '52:54:00:12:34:56',
): os.NetworkInterfaceInfo {
  const address = cidr.split('/')[0] ?? '';
  return family === 'IPv4'
    ? { family, address, cidr, mac, netmask: '255.255.255.0', internal: false }
    : { family, address, cidr, mac, netmask: 'ffff:ffff:ffff:ffff::', internal: false, scopeid: 0 };
}

const FAKE_INTERFACES = (): NodeJS.Dict<os.NetworkInterfaceInfo[]> => ({
  lo: [addr('IPv4', '127.0.0.1/8', '00:00:00:00:00:00')],
  eth0: [
    addr('IPv4', '10.0.0.5/24'),
    addr('IPv6', 'fd00::5/64'),
    addr('IPv6', 'fe80::5054:ff:fe12:3456/64'),
  ],
  docker0: [addr('IPv4', '172.17.0.1/16', '02:42:00:00:00:01')],
  'br-1a2b': [addr('IPv4', '172.18.0.1/16', '02:42:00:00:00:02')],
  vethdead: [addr('IPv6', 'fe80::1/64', '02:42:00:00:00:03')],
  ens5: [addr('IPv4', '192.168.1.9/24', '52:54:00:aa:bb:cc')],
});

describe('parseOsRelease', () => {
  it('should unquote values when they are double or single quoted', async () => {
    const release = await readOsRelease(OS_RELEASE);
    expect(release).toMatchObject({
      PRETTY_NAME: 'Ubuntu 24.04.1 LTS',
      NAME: 'Ubuntu',
      VERSION_ID: '24.04',
      ID: 'ubuntu',
      HOME_URL: 'https://www.ubuntu.com/',
      VARIANT: 'Server "edition"',
    });
  });

  it('should skip comments and malformed lines when parsing', () => {
    expect(parseOsRelease('# c\n\nnot a pair\nID=x\n  =bad\n')).toEqual({ ID: 'x' });
  });

  it('should return no fields when the file is missing', async () => {
    await expect(readOsRelease('/nonexistent/os-release')).resolves.toEqual({});
  });
});

describe('cachedOsInfo', () => {
  it('should read os-release again only when the file changed', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'lq-os-info-'));
    try {
      const file = join(dir, 'os-release');
      copyFileSync(OS_RELEASE, file);
      utimesSync(file, 1_000, 1_000);
      const read = cachedOsInfo(file, 0);
      expect((await read()).version).toBe('24.04');
      // Same size and mtime: the kept answer (a rewrite that keeps both is not seen).
      writeFileSync(
        file,
        readFileSync(OS_RELEASE, 'utf8').replace('VERSION_ID="24.04"', 'VERSION_ID="24.10"'),
      );
      utimesSync(file, 1_000, 1_000);
      expect((await read()).version).toBe('24.04');
      utimesSync(file, 2_000, 2_000);
      expect((await read()).version).toBe('24.10');
      writeFileSync(file, 'NAME="Ubuntu"\nVERSION_ID="26.04"\nVERSION="26.04 LTS"\n');
      expect(await read()).toMatchObject({ version: '26.04', versionName: '26.04 LTS' });
      rmSync(file);
      expect((await read()).version).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should not look at the file again within recheckMs', async () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'lq-os-info-'));
    try {
      const file = join(dir, 'os-release');
      copyFileSync(OS_RELEASE, file);
      const read = cachedOsInfo(file, 60_000);
      expect((await read()).version).toBe('24.04');
      writeFileSync(file, 'NAME="Ubuntu"\nVERSION_ID="26.04"\n');
      expect((await read()).version).toBe('24.04');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should answer the same object while nothing changed', async () => {
    const read = cachedOsInfo(OS_RELEASE);
    expect(await read()).toBe(await read());
  });
});

describe('collectOsInfo', () => {
  it('should combine os-release fields with uname when the file exists', async () => {
    const info = await collectOsInfo(OS_RELEASE);
    expect(info).toMatchObject({
      name: 'Ubuntu',
      version: '24.04',
      versionName: '24.04.1 LTS (Noble Numbat)',
      id: 'ubuntu',
      prettyName: 'Ubuntu 24.04.1 LTS',
      kernelRelease: os.release(),
      kernelVersion: os.version(),
      arch: os.machine(),
    });
  });

  it('should still report the kernel when os-release is missing', async () => {
    const info = await collectOsInfo('/nonexistent/os-release');
    expect(info.name).toBe('');
    expect(info.kernelRelease).toBe(os.release());
  });
});

describe('interfaceFilter', () => {
  it('should exclude names matching shell-style patterns when given the defaults', () => {
    const excluded = interfaceFilter(defaultConfig().network.exclude_interfaces);
    expect(['lo', 'veth1', 'docker0', 'virbr0', 'br-abc'].filter(excluded)).toHaveLength(5);
    expect(['eth0', 'ens3', 'lo0', 'bridge0', 'br0'].filter(excluded)).toEqual([]);
  });

  it('should treat regex characters literally when a pattern contains them', () => {
    const excluded = interfaceFilter(['a.b', 'eth?']);
    expect(excluded('a.b')).toBe(true);
    expect(excluded('axb')).toBe(false);
    expect(excluded('eth1')).toBe(true);
    expect(excluded('eth10')).toBe(false);
  });

  it('should exclude nothing when there are no patterns', () => {
    expect(interfaceFilter([])('lo')).toBe(false);
  });
});

describe('listInterfaces', () => {
  it('should list MAC and CIDR addresses when interfaces are not excluded', () => {
    const list = listInterfaces(
      interfaceFilter(defaultConfig().network.exclude_interfaces),
      FAKE_INTERFACES,
    );
    expect(list.map((i) => i.name)).toEqual(['eth0', 'ens5']);
    expect(list[0]).toMatchObject({
      mac: '52:54:00:12:34:56',
      ipv4: ['10.0.0.5/24'],
      ipv6: ['fd00::5/64', 'fe80::5054:ff:fe12:3456/64'],
    });
  });
});

describe('collectAgentInfo', () => {
  it('should fill every AgentInfo field when given the extras', async () => {
    const config = defaultConfig();
    config.system.os_release_file = OS_RELEASE;
    const startedAt = new Date('2025-01-02T03:04:05.678Z');
    const info = await collectAgentInfo(config, {
      agentVersion: '0.1.0',
      protocolVersion: 1,
      capabilities: ['ping', 'file.read'],
      limits: { maxFrameBytes: 4194304, fileChunkMaxBytes: 1048576 },
      startedAt,
    });
    expect(info).toMatchObject({
      agentVersion: '0.1.0',
      protocolVersion: 1,
      hostname: os.hostname(),
      capabilities: ['ping', 'file.read'],
      os: { id: 'ubuntu', arch: os.machine() },
      limits: { maxFrameBytes: 4194304, fileChunkMaxBytes: 1048576 },
      startedAt: { seconds: BigInt(Math.floor(startedAt.getTime() / 1000)), nanos: 678_000_000 },
    });
    expect(info.interfaces.some((i) => i.name === 'lo')).toBe(false);
  });
});
