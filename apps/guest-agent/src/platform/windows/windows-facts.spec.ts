import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import {
  WINDOWS_FACTS_SCRIPT,
  parseIpconfigAll,
  parsePowerShellDate,
  parseWindowsFacts,
  prefixLength,
} from './windows-facts.js';

const fixture = (name: string) =>
  readFileSync(join(dirname(fileURLToPath(import.meta.url)), '__fixtures__', name), 'utf8');

describe('Windows facts from PowerShell CIM', () => {
  it('should read Windows PowerShell 5.1 output (one-element collections as objects, /Date()/)', () => {
    const facts = parseWindowsFacts(fixture('facts-ps51.json'), 'x86_64');
    expect(facts.os).toMatchObject({
      name: 'Windows Server 2022 Datacenter',
      version: '10.0.20348',
      versionName: 'Microsoft Windows Server 2022 Datacenter',
      id: 'windows',
      prettyName: 'Microsoft Windows Server 2022 Datacenter (10.0.20348)',
      kernelRelease: '10.0.20348',
      kernelVersion: '20348',
      arch: 'x86_64',
    });
    expect(facts.disks).toHaveLength(1);
    expect(facts.disks[0]).toMatchObject({
      mountPoint: 'C:\\',
      device: 'C:',
      fsType: 'NTFS',
      totalBytes: 42396790784n,
      availableBytes: 25838374912n,
      usedBytes: 42396790784n - 25838374912n,
    });
    expect(facts.interfaces).toEqual([
      expect.objectContaining({
        name: 'Red Hat VirtIO Ethernet Adapter',
        mac: '52:54:00:12:34:56',
        ipv4: ['10.0.2.15/24'],
        ipv6: ['fe80::1c2b:3d4e:5f60:7182/64'],
      }),
    ]);
    expect(facts.bootTime?.toISOString()).toBe('2024-12-05T08:00:00.000Z');
    expect(facts.memory).toEqual({ totalBytes: 4193848n * 1024n, freeBytes: 2516104n * 1024n });
  });

  it('should read PowerShell 7 output (arrays, ISO dates, several disks and adapters)', () => {
    const facts = parseWindowsFacts(fixture('facts-ps7.json'));
    expect(facts.os.name).toBe('Windows 11 Pro');
    expect(facts.os.arch).toBe('64-bit');
    expect(facts.disks.map((d) => [d.mountPoint, d.device, d.fsType])).toEqual([
      ['C:\\', 'System', 'NTFS'],
      ['D:\\', 'Data', 'ReFS'],
    ]);
    expect(facts.interfaces.map((i) => [i.name, i.mac, i.ipv4, i.ipv6])).toEqual([
      [
        'Red Hat VirtIO Ethernet Adapter',
        '52:54:00:12:34:56',
        ['192.168.122.50/24'],
        ['fd00::50/64', 'fe80::a00:27ff:fe4e:66a1/64'],
      ],
      ['Red Hat VirtIO Ethernet Adapter #2', '52:54:00:ab:cd:ef', ['172.16.0.9/16'], []],
    ]);
    expect(facts.bootTime?.toISOString()).toBe('2024-12-05T07:00:00.000Z');
  });

  it('should take a UTF-8 BOM and fail clearly on text that is not the facts', () => {
    expect(parseWindowsFacts(`\uFEFF${fixture('facts-ps7.json')}`).disks).toHaveLength(2);
    expect(() => parseWindowsFacts('Get-CimInstance : Access denied')).toThrow();
  });

  it('should parse the date forms PowerShell and CIM print', () => {
    expect(parsePowerShellDate('/Date(0)/')?.toISOString()).toBe('1970-01-01T00:00:00.000Z');
    expect(parsePowerShellDate('20241205080000.500000+060')?.toISOString()).toBe(
      '2024-12-05T07:00:00.500Z',
    );
    expect(parsePowerShellDate({ value: '/Date(1000)/' })?.getTime()).toBe(1000);
    expect(parsePowerShellDate('not a date')).toBeUndefined();
  });

  it('should turn masks and prefixes into prefix lengths', () => {
    expect(prefixLength('255.255.255.0')).toBe(24);
    expect(prefixLength('255.255.255.255')).toBe(32);
    expect(prefixLength('255.0.255.0')).toBeUndefined();
    expect(prefixLength('64')).toBe(64);
  });

  it('should query with -Compress JSON so one line is one answer', () => {
    expect(WINDOWS_FACTS_SCRIPT).toContain('ConvertTo-Json -Depth 4 -Compress');
    expect(WINDOWS_FACTS_SCRIPT).toContain("Win32_LogicalDisk -Filter 'DriveType=3'");
  });
});

describe('ipconfig /all', () => {
  it('should read adapters with addresses and skip disconnected ones', () => {
    expect(parseIpconfigAll(fixture('ipconfig-all.txt'))).toEqual([
      expect.objectContaining({
        name: 'Red Hat VirtIO Ethernet Adapter',
        mac: '52:54:00:12:34:56',
        ipv4: ['10.0.2.15/24'],
        ipv6: ['fe80::1c2b:3d4e:5f60:7182'],
      }),
    ]);
  });
});
