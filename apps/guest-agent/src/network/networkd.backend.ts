// systemd-networkd: one /etc/systemd/network/10-lq-<iface>.network per interface. networkd uses
// the first .network file (in lexical order) that matches an interface, so 10- wins over the
// distribution's and cloud-init's files; removing it hands the interface back to them.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendKind, FileSet, NetworkBackendDriver } from './backend.js';
import { HEADER } from './backend.js';
import { iniValue, iniValues, parseIni } from './ini.js';
import { blankNetIface, parseCidr, type NetIface } from '@lq/proto';

/** A .network unit for one interface. Pure. */
export function renderNetworkUnit(i: NetIface): string {
  const lines = [`# ${HEADER}`, '[Match]', `Name=${i.name}`, ''];
  if (i.mtu) {
    lines.push('[Link]', `MTUBytes=${i.mtu}`, '');
  }
  lines.push('[Network]', `DHCP=${i.dhcp ? 'ipv4' : 'no'}`);
  for (const a of i.addresses) {
    lines.push(`Address=${a}`);
  }
  if (i.gateway) {
    lines.push(`Gateway=${i.gateway}`);
  }
  for (const d of i.dns) {
    lines.push(`DNS=${d}`);
  }
  if (i.search.length) {
    lines.push(`Domains=${i.search.join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** What one .network unit configures, if it matches exactly one interface name. Pure. */
export function parseNetworkUnit(text: string): NetIface | undefined {
  const ini = parseIni(text);
  const names = iniValues(ini, 'Match', 'Name').flatMap((v) => v.split(/\s+/));
  const name = names[0];
  if (names.length !== 1 || !name || /[*?[\]!]/.test(name) || name === 'lo') {
    return undefined;
  }
  const i = blankNetIface(name);
  const dhcp = (iniValue(ini, 'Network', 'DHCP') ?? 'no').toLowerCase();
  i.dhcp = ['yes', 'true', 'ipv4', '1', 'on'].includes(dhcp);
  i.addresses = [
    ...iniValues(ini, 'Network', 'Address'),
    ...iniValues(ini, 'Address', 'Address'),
  ].filter((a) => parseCidr(a));
  i.gateway =
    [...iniValues(ini, 'Network', 'Gateway'), ...iniValues(ini, 'Route', 'Gateway')][0] ?? '';
  i.dns = iniValues(ini, 'Network', 'DNS')
    .flatMap((v) => v.split(/\s+/))
    .filter(Boolean);
  i.search = iniValues(ini, 'Network', 'Domains')
    .flatMap((v) => v.split(/\s+/))
    .filter((d) => d && !d.startsWith('~'));
  i.mtu = Number(iniValue(ini, 'Link', 'MTUBytes') ?? 0) || 0;
  return i;
}

export interface NetworkdPaths {
  networkd_dir: string;
  networkctl: string;
}

export class NetworkdBackend implements NetworkBackendDriver {
  readonly kind: BackendKind = 'networkd';

  constructor(private readonly paths: NetworkdPaths) {}

  private unit(name: string): string {
    return join(this.paths.networkd_dir, `10-lq-${name}.network`);
  }

  async configFiles(): Promise<string[]> {
    const names = await readdir(this.paths.networkd_dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.endsWith('.network'))
      .sort()
      .map((n) => join(this.paths.networkd_dir, n));
  }

  parse(files: FileSet): NetIface[] {
    const byName = new Map<string, NetIface>();
    for (const path of [...files.keys()].sort()) {
      const text = files.get(path);
      const i = text ? parseNetworkUnit(text) : undefined;
      // The first matching file wins, as in networkd.
      if (i && !byName.has(i.name)) {
        byName.set(i.name, i);
      }
    }
    return [...byName.values()];
  }

  ownedPaths(names: readonly string[]): string[] {
    return names.map((n) => this.unit(n));
  }

  render(desired: readonly NetIface[]): Map<string, string | null> {
    return new Map(desired.map((i) => [this.unit(i.name), renderNetworkUnit(i)]));
  }

  down(): string[][] {
    return [];
  }

  up(names: readonly string[]): string[][] {
    const c = this.paths.networkctl;
    return [[c, 'reload'], ...names.map((n) => [c, 'reconfigure', n])];
  }
}
