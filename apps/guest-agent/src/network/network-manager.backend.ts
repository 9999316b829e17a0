// NetworkManager: one keyfile /etc/NetworkManager/system-connections/lq-<iface>.nmconnection
// per interface (mode 0600, as NetworkManager requires), bound to the interface and preferred
// by autoconnect-priority; `nmcli connection up` activates it. Rolling back to no file of ours
// lets NetworkManager pick the guest's own profile again (`nmcli device connect`).
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isIPv4 } from 'node:net';
import type { BackendKind, FileSet, NetworkBackendDriver } from './backend.js';
import { HEADER } from './backend.js';
import { iniValue, parseIni, type IniSection } from './ini.js';
import { blankNetIface, parseCidr, type NetIface } from '@lq/proto';

/** A stable UUID for our profile of an interface (a re-apply keeps the same connection). */
export function profileUuid(name: string): string {
  const h = createHash('sha256').update(`limiquantix-network:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The keyfile of our profile for one interface. Pure. */
export function renderKeyfile(i: NetIface): string {
  const v4 = i.addresses.filter((a) => parseCidr(a)?.family === 4);
  const v6 = i.addresses.filter((a) => parseCidr(a)?.family === 6);
  const gw4 = i.gateway && isIPv4(i.gateway) ? i.gateway : '';
  const gw6 = i.gateway && !isIPv4(i.gateway) ? i.gateway : '';
  const dns4 = i.dns.filter((d) => isIPv4(d));
  const dns6 = i.dns.filter((d) => !isIPv4(d));
  const list = (xs: string[]) => `${xs.join(';')};`;
  const lines = [
    `# ${HEADER}`,
    '[connection]',
    `id=lq-${i.name}`,
    `uuid=${profileUuid(i.name)}`,
    'type=ethernet',
    `interface-name=${i.name}`,
    'autoconnect=true',
    'autoconnect-priority=100',
    '',
    '[ethernet]',
  ];
  if (i.mtu) {
    lines.push(`mtu=${i.mtu}`);
  }
  lines.push('', '[ipv4]');
  if (i.dhcp) {
    lines.push('method=auto');
  } else if (v4.length) {
    lines.push('method=manual');
    v4.forEach((a, n) => lines.push(`address${n + 1}=${a}`));
    if (gw4) {
      lines.push(`gateway=${gw4}`);
    }
  } else {
    lines.push('method=disabled');
  }
  if (dns4.length) {
    lines.push(`dns=${list(dns4)}`, 'ignore-auto-dns=true');
  }
  if (i.search.length) {
    lines.push(`dns-search=${list(i.search)}`);
  }
  lines.push('', '[ipv6]');
  if (v6.length) {
    lines.push('method=manual');
    v6.forEach((a, n) => lines.push(`address${n + 1}=${a}`));
    if (gw6) {
      lines.push(`gateway=${gw6}`);
    }
  } else {
    lines.push('method=auto');
  }
  if (dns6.length) {
    lines.push(`dns=${list(dns6)}`);
  }
  return `${lines.join('\n')}\n`;
}

function addressesOf(ini: IniSection[], section: string): { addrs: string[]; gw: string } {
  const s = ini.filter((x) => x.name === section).flatMap((x) => x.entries);
  const addrs: string[] = [];
  let gw = iniValue(ini, section, 'gateway') ?? '';
  for (const [k, v] of s) {
    if (/^address\d*$/.test(k) || /^addresses\d*$/.test(k)) {
      const [cidr = '', g] = v.split(',');
      if (parseCidr(cidr)) {
        addrs.push(cidr);
      }
      if (g && !gw) {
        gw = g;
      }
    }
  }
  return { addrs, gw };
}

/** What one keyfile configures, if it is an ethernet profile bound to an interface. Pure. */
export function parseKeyfile(text: string): { id: string; iface: NetIface } | undefined {
  const ini = parseIni(text);
  const name = iniValue(ini, 'connection', 'interface-name');
  const type = iniValue(ini, 'connection', 'type') ?? '';
  if (!name || name === 'lo' || !['ethernet', '802-3-ethernet'].includes(type)) {
    return undefined;
  }
  const i = blankNetIface(name);
  i.dhcp = (iniValue(ini, 'ipv4', 'method') ?? 'auto') === 'auto';
  const v4 = addressesOf(ini, 'ipv4');
  const v6 = addressesOf(ini, 'ipv6');
  i.addresses = [...v4.addrs, ...v6.addrs];
  i.gateway = v4.gw || v6.gw;
  const split = (v: string | undefined) =>
    (v ?? '')
      .split(/[;,]/)
      .map((x) => x.trim())
      .filter(Boolean);
  i.dns = [...split(iniValue(ini, 'ipv4', 'dns')), ...split(iniValue(ini, 'ipv6', 'dns'))];
  i.search = split(iniValue(ini, 'ipv4', 'dns-search'));
  i.mtu = Number(iniValue(ini, 'ethernet', 'mtu') ?? 0) || 0;
  return { id: iniValue(ini, 'connection', 'id') ?? '', iface: i };
}

export interface NetworkManagerPaths {
  nm_connections_dir: string;
  nmcli: string;
}

export class NetworkManagerBackend implements NetworkBackendDriver {
  readonly kind: BackendKind = 'networkmanager';

  constructor(private readonly paths: NetworkManagerPaths) {}

  private keyfile(name: string): string {
    return join(this.paths.nm_connections_dir, `lq-${name}.nmconnection`);
  }

  async configFiles(): Promise<string[]> {
    const names = await readdir(this.paths.nm_connections_dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.endsWith('.nmconnection'))
      .sort()
      .map((n) => join(this.paths.nm_connections_dir, n));
  }

  parse(files: FileSet): NetIface[] {
    const byName = new Map<string, { id: string; iface: NetIface }>();
    for (const path of [...files.keys()].sort()) {
      const text = files.get(path);
      const p = text ? parseKeyfile(text) : undefined;
      // Our profile (lq-<iface>) wins: it has the highest autoconnect priority.
      if (p && (!byName.has(p.iface.name) || p.id === `lq-${p.iface.name}`)) {
        byName.set(p.iface.name, p);
      }
    }
    return [...byName.values()].map((p) => p.iface);
  }

  ownedPaths(names: readonly string[]): string[] {
    return names.map((n) => this.keyfile(n));
  }

  render(desired: readonly NetIface[]): Map<string, string | null> {
    return new Map(desired.map((i) => [this.keyfile(i.name), renderKeyfile(i)]));
  }

  down(): string[][] {
    return [];
  }

  up(names: readonly string[], applied: FileSet): string[][] {
    const c = this.paths.nmcli;
    return [
      [c, 'connection', 'reload'],
      ...names.map((n) =>
        typeof applied.get(this.keyfile(n)) === 'string'
          ? [c, 'connection', 'up', `lq-${n}`]
          : [c, 'device', 'connect', n],
      ),
    ];
  }
}
