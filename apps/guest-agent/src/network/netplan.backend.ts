// netplan: the agent's own /etc/netplan/90-limiquantix.yaml (mode 0600, as netplan wants),
// holding every interface it configured. netplan reads its files in lexical order and a later
// file's keys replace an earlier one's, so 90- overrides the installer's and cloud-init's
// settings of the same interface. Applied with `netplan generate` then `netplan apply`.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isIPv4 } from 'node:net';
import type { BackendKind, FileSet, NetworkBackendDriver } from './backend.js';
import { HEADER } from './backend.js';
import { asList, asMap, asString, parseYaml, type YamlValue } from './mini-yaml.js';
import { blankNetIface, parseCidr, type NetIface } from '@lq/proto';

export const NETPLAN_FILE = '90-limiquantix.yaml';

const q = (s: string) => JSON.stringify(s);

function renderIface(i: NetIface): string[] {
  const out = [`    ${i.name}:`, `      dhcp4: ${i.dhcp ? 'true' : 'false'}`];
  if (i.addresses.length) {
    out.push('      addresses:', ...i.addresses.map((a) => `        - ${q(a)}`));
  }
  if (i.gateway) {
    out.push(
      '      routes:',
      `        - to: ${isIPv4(i.gateway) ? 'default' : q('::/0')}`,
      `          via: ${q(i.gateway)}`,
    );
  }
  if (i.dns.length || i.search.length) {
    out.push('      nameservers:');
    if (i.dns.length) {
      out.push(`        addresses: [${i.dns.map(q).join(', ')}]`);
    }
    if (i.search.length) {
      out.push(`        search: [${i.search.map(q).join(', ')}]`);
    }
  }
  if (i.mtu) {
    out.push(`      mtu: ${i.mtu}`);
  }
  return out;
}

/** The netplan document for these interfaces. Pure. */
export function renderNetplan(ifaces: readonly NetIface[]): string {
  return `${[
    `# ${HEADER}`,
    'network:',
    '  version: 2',
    '  ethernets:',
    ...[...ifaces].sort((a, b) => a.name.localeCompare(b.name)).flatMap(renderIface),
  ].join('\n')}\n`;
}

function ifaceOf(name: string, v: YamlValue, base?: NetIface): NetIface {
  const m = asMap(v);
  const i = base ? { ...base } : blankNetIface(name);
  if ('dhcp4' in m) {
    i.dhcp = ['true', 'yes', 'on'].includes(asString(m.dhcp4).toLowerCase());
  }
  if ('addresses' in m) {
    i.addresses = asList(m.addresses)
      .map((a) => (typeof a === 'string' ? a : (Object.keys(asMap(a))[0] ?? '')))
      .filter((a) => parseCidr(a));
  }
  const gw = asString(m.gateway4) || asString(m.gateway6);
  if (gw) {
    i.gateway = gw;
  }
  for (const r of asList(m.routes)) {
    const route = asMap(r);
    if (['default', '0.0.0.0/0', '::/0'].includes(asString(route.to))) {
      i.gateway = asString(route.via);
    }
  }
  if ('nameservers' in m) {
    const ns = asMap(m.nameservers);
    i.dns = asList(ns.addresses).map(asString).filter(Boolean);
    i.search = asList(ns.search).map(asString).filter(Boolean);
  }
  if ('mtu' in m) {
    i.mtu = Number(asString(m.mtu)) || 0;
  }
  return i;
}

/** The ethernets the netplan documents configure, later files' keys replacing earlier. Pure. */
export function parseNetplan(documents: readonly string[]): NetIface[] {
  const byName = new Map<string, NetIface>();
  for (const text of documents) {
    const ethernets = asMap(asMap(asMap(parseYaml(text)).network).ethernets);
    for (const [id, v] of Object.entries(ethernets)) {
      const name = asString(asMap(v)['set-name']) || id;
      if (name !== 'lo') {
        byName.set(name, ifaceOf(name, v, byName.get(name)));
      }
    }
  }
  return [...byName.values()];
}

export interface NetplanPaths {
  netplan_dir: string;
  netplan: string;
}

export class NetplanBackend implements NetworkBackendDriver {
  readonly kind: BackendKind = 'netplan';

  constructor(private readonly paths: NetplanPaths) {}

  private get file(): string {
    return join(this.paths.netplan_dir, NETPLAN_FILE);
  }

  async configFiles(): Promise<string[]> {
    const names = await readdir(this.paths.netplan_dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'))
      .sort()
      .map((n) => join(this.paths.netplan_dir, n));
  }

  parse(files: FileSet): NetIface[] {
    return parseNetplan(
      [...files.keys()]
        .sort()
        .map((p) => files.get(p))
        .filter((t): t is string => typeof t === 'string'),
    );
  }

  ownedPaths(): string[] {
    return [this.file];
  }

  render(desired: readonly NetIface[], current: FileSet): Map<string, string | null> {
    const ours = parseNetplan([current.get(this.file) ?? '']);
    const names = new Set(desired.map((d) => d.name));
    return new Map([
      [this.file, renderNetplan([...ours.filter((o) => !names.has(o.name)), ...desired])],
    ]);
  }

  down(): string[][] {
    return [];
  }

  up(): string[][] {
    return [
      [this.paths.netplan, 'generate'],
      [this.paths.netplan, 'apply'],
    ];
  }
}
