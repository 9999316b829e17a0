// What a Windows guest is and holds, read through PowerShell's CIM cmdlets (WMI) in one process
// and printed as JSON: the OS (Win32_OperatingSystem), fixed disks (Win32_LogicalDisk, type 3)
// and IP-enabled adapters (Win32_NetworkAdapterConfiguration). Parsing is separate and pure, so
// the formats of Windows PowerShell 5.1 (dates as "/Date(ms)/", a one-element array printed as
// an object) and PowerShell 7 (ISO dates) are both tested against recorded text.
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  DiskUsageSchema,
  NetworkInterfaceSchema,
  OsInfoSchema,
  type DiskUsage,
  type NetworkInterface,
  type OsInfo,
} from '@lq/proto';

/** The script; -Depth 4 keeps the address arrays, -Compress keeps it one line. */
export const WINDOWS_FACTS_SCRIPT = [
  "$ErrorActionPreference = 'Stop'",
  '$os = Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version, BuildNumber, OSArchitecture, CSName, LastBootUpTime, TotalVisibleMemorySize, FreePhysicalMemory',
  "$disks = @(Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=3' | Select-Object DeviceID, FileSystem, Size, FreeSpace, VolumeName)",
  "$nics = @(Get-CimInstance Win32_NetworkAdapterConfiguration -Filter 'IPEnabled=True' | Select-Object Description, MACAddress, IPAddress, IPSubnet, InterfaceIndex)",
  '@{ os = $os; disks = $disks; adapters = $nics } | ConvertTo-Json -Depth 4 -Compress',
].join('; ');

export interface WindowsFacts {
  os: OsInfo;
  disks: DiskUsage[];
  interfaces: NetworkInterface[];
  bootTime: Date | undefined;
  memory: { totalBytes: bigint; freeBytes: bigint } | undefined;
}

type Json = Record<string, unknown>;

/** PowerShell 5.1 prints a one-element collection as the element itself. */
function list(value: unknown): Json[] {
  if (value === null || value === undefined) {
    return [];
  }
  return (Array.isArray(value) ? value : [value]).filter(
    (v): v is Json => typeof v === 'object' && v !== null,
  );
}

function strings(value: unknown): string[] {
  if (value === null || value === undefined) {
    return [];
  }
  return (Array.isArray(value) ? (value as unknown[]) : [value]).map((v) =>
    typeof v === 'string' || typeof v === 'number' ? String(v) : '',
  );
}

function str(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : '';
}

function bytes(value: unknown): bigint {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) {
    return BigInt(Math.trunc(value));
  }
  if (typeof value === 'string' && /^\d+$/.test(value)) {
    return BigInt(value);
  }
  return 0n;
}

/** "/Date(1733385600000)/" (5.1), "2024-12-05T08:00:00+01:00" (7), or a CIM DMTF string. */
export function parsePowerShellDate(value: unknown): Date | undefined {
  if (typeof value === 'object' && value !== null && 'value' in value) {
    return parsePowerShellDate((value as Json).value);
  }
  if (typeof value !== 'string') {
    return undefined;
  }
  const legacy = /^\/Date\((-?\d+)([+-]\d{4})?\)\/$/.exec(value);
  if (legacy) {
    return new Date(Number(legacy[1]));
  }
  // DMTF: yyyymmddHHMMSS.mmmmmmsUUU, the offset in minutes.
  const dmtf = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\.(\d{6})([+-])(\d{3})$/.exec(value);
  if (dmtf) {
    const [, y, mo, d, h, mi, s, us, sign, off] = dmtf;
    const utc = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, Math.floor(+us! / 1000));
    return new Date(utc - (sign === '-' ? -1 : 1) * Number(off) * 60_000);
  }
  const iso = Date.parse(value);
  return Number.isNaN(iso) ? undefined : new Date(iso);
}

/** "255.255.255.0" → 24; "64" → 64; anything else → undefined. */
export function prefixLength(mask: string): number | undefined {
  if (/^\d{1,3}$/.test(mask)) {
    const n = Number(mask);
    return n <= 128 ? n : undefined;
  }
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    return undefined;
  }
  const bits = parts.map((p) => p.toString(2).padStart(8, '0')).join('');
  return /^1*0*$/.test(bits) ? (bits.indexOf('0') === -1 ? 32 : bits.indexOf('0')) : undefined;
}

/** "Microsoft Windows Server 2022 Datacenter" → version name and id; the build from Version. */
function osInfoOf(os: Json | undefined, arch: string): OsInfo {
  const caption = str(os?.Caption).trim();
  const version = str(os?.Version);
  const init: MessageInitShape<typeof OsInfoSchema> = {
    name: caption.replace(/^Microsoft /, '') || 'Windows',
    version,
    versionName: caption,
    id: 'windows',
    prettyName: caption ? `${caption} (${version})` : 'Windows',
    kernelRelease: version,
    kernelVersion: str(os?.BuildNumber),
    arch: arch || str(os?.OSArchitecture),
  };
  return create(OsInfoSchema, init);
}

/** Parses the script's output; throws on text that is not its JSON. */
export function parseWindowsFacts(text: string, arch = ''): WindowsFacts {
  const parsed = JSON.parse(text.replace(/^\uFEFF/, '')) as Json;
  if (typeof parsed !== 'object' || parsed === null) {
    throw new Error('PowerShell printed no facts object');
  }
  const os = list(parsed.os)[0];
  const disks = list(parsed.disks).map((d) => {
    const total = bytes(d.Size);
    const free = bytes(d.FreeSpace);
    const device = str(d.DeviceID);
    return create(DiskUsageSchema, {
      mountPoint: device.endsWith('\\') ? device : `${device}\\`,
      device: str(d.VolumeName) || device,
      fsType: str(d.FileSystem),
      totalBytes: total,
      availableBytes: free,
      usedBytes: total > free ? total - free : 0n,
    });
  });
  const interfaces = list(parsed.adapters).map((a) => {
    const addresses = strings(a.IPAddress);
    const masks = strings(a.IPSubnet);
    const ipv4: string[] = [];
    const ipv6: string[] = [];
    addresses.forEach((address, i) => {
      const mask = masks[i];
      const prefix = mask === undefined ? undefined : prefixLength(mask);
      const cidr = prefix === undefined ? address : `${address}/${prefix}`;
      (address.includes(':') ? ipv6 : ipv4).push(cidr);
    });
    return create(NetworkInterfaceSchema, {
      name: str(a.Description),
      mac: str(a.MACAddress).toLowerCase().replaceAll('-', ':'),
      ipv4,
      ipv6,
    });
  });
  const totalKiB = bytes(os?.TotalVisibleMemorySize);
  return {
    os: osInfoOf(os, arch),
    disks,
    interfaces,
    bootTime: parsePowerShellDate(os?.LastBootUpTime),
    memory:
      totalKiB > 0n
        ? { totalBytes: totalKiB * 1024n, freeBytes: bytes(os?.FreePhysicalMemory) * 1024n }
        : undefined,
  };
}

/**
 * `ipconfig /all` (English), for guests where PowerShell is removed or locked down: each
 * adapter's description, physical address and addresses. Lines look like
 * "   IPv4 Address. . . . . . . . . . . : 10.0.0.5(Preferred) ".
 */
export function parseIpconfigAll(text: string): NetworkInterface[] {
  const out: NetworkInterface[] = [];
  let current:
    { name: string; mac: string; ipv4: string[]; ipv6: string[]; mask?: number } | undefined;
  let lastKey = '';
  const flush = () => {
    if (current && (current.ipv4.length > 0 || current.ipv6.length > 0)) {
      out.push(
        create(NetworkInterfaceSchema, {
          name: current.name,
          mac: current.mac,
          ipv4: current.ipv4,
          ipv6: current.ipv6,
        }),
      );
    }
  };
  for (const raw of text.split(/\r?\n/)) {
    if (/^\S.*adapter .*:\s*$/.test(raw)) {
      flush();
      current = { name: '', mac: '', ipv4: [], ipv6: [] };
      lastKey = '';
      continue;
    }
    if (!current) {
      continue;
    }
    const kv = /^\s+([^.:]+?)[ .]*:\s?(.*)$/.exec(raw);
    const value = (kv ? kv[2]! : raw).trim().replace(/\((Preferred|Deprecated|Tentative)\)$/, '');
    const key = kv ? kv[1]!.trim() : lastKey;
    if (kv) {
      lastKey = key;
    }
    if (key === 'Description') {
      current.name = value;
    } else if (key === 'Physical Address') {
      current.mac = value.toLowerCase().replaceAll('-', ':');
    } else if (key === 'IPv4 Address' || key === 'Autoconfiguration IPv4 Address') {
      current.ipv4.push(value);
    } else if (key === 'Subnet Mask' && current.ipv4.length > 0) {
      const prefix = prefixLength(value);
      const last = current.ipv4.length - 1;
      if (prefix !== undefined && !current.ipv4[last]!.includes('/')) {
        current.ipv4[last] = `${current.ipv4[last]}/${prefix}`;
      }
    } else if (key === 'IPv6 Address' || key === 'Link-local IPv6 Address') {
      current.ipv6.push(value.replace(/%\d+$/, ''));
    }
  }
  flush();
  return out;
}
