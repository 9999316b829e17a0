// ifupdown: /etc/network/interfaces, read by Debian's ifupdown and by busybox's ifup/ifdown.
// The agent rewrites the one file, keeping every stanza of the interfaces it was not asked
// about. It writes what both implementations understand: `address` + `netmask` (busybox does
// not take CIDR), one IPv4 and one IPv6 address per stanza with further ones added by `up`
// lines, `dns-nameservers`/`dns-search` (resolvconf reads them; busybox ignores them).
import { isIPv4 } from 'node:net';
import type { BackendKind, FileSet, NetworkBackendDriver } from './backend.js';
import { HEADER } from './backend.js';
import { blankNetIface, parseCidr, v4Netmask, v4PrefixOf, type NetIface } from '@lq/proto';

/** Lines that start a stanza (anything else indented belongs to the `iface` above it). */
const STANZA =
  /^(auto|allow-[\w-]+|iface|mapping|source|source-directory|no-auto-down|no-scripts|rename)\b/;

interface Stanza {
  /** The stanza's lines, as written. */
  lines: string[];
  kind: string;
  /** iface: its interface; auto/allow-*: the interfaces listed. */
  names: string[];
}

function stanzas(text: string): { preamble: string[]; stanzas: Stanza[] } {
  const preamble: string[] = [];
  const out: Stanza[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    const m = STANZA.exec(trimmed);
    if (m && !/^\s/.test(line)) {
      const words = trimmed.split(/\s+/);
      const kind = m[1]!;
      out.push({
        lines: [line],
        kind,
        names: kind === 'iface' || kind === 'mapping' ? [words[1] ?? ''] : words.slice(1),
      });
    } else if (out.length === 0) {
      preamble.push(line);
    } else {
      out.at(-1)!.lines.push(line);
    }
  }
  return { preamble, stanzas: out };
}

function option(lines: string[], key: string): string[] {
  return lines
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w[0] === key)
    .map((w) => w.slice(1).join(' '));
}

/** The interfaces an interfaces(5) file configures (loopback left out). Pure. */
export function parseInterfaces(text: string): NetIface[] {
  const byName = new Map<string, NetIface>();
  for (const s of stanzas(text).stanzas) {
    if (s.kind !== 'iface') {
      continue;
    }
    const words = s.lines[0]!.trim().split(/\s+/);
    const [, name = '', family = '', method = ''] = words;
    if (method === 'loopback' || name === 'lo' || name.includes(':')) {
      continue;
    }
    const iface = byName.get(name) ?? blankNetIface(name);
    byName.set(name, iface);
    if (family === 'inet' && method === 'dhcp') {
      iface.dhcp = true;
    }
    if (method === 'static') {
      for (const address of option(s.lines, 'address')) {
        let cidr = address;
        if (!address.includes('/')) {
          const mask = option(s.lines, 'netmask')[0] ?? '';
          const prefix = family === 'inet' ? (v4PrefixOf(mask) ?? 32) : Number(mask || '64') || 64;
          cidr = `${address}/${prefix}`;
        }
        iface.addresses.push(cidr);
      }
      // Further addresses this agent added with `up ip addr add …`.
      for (const up of option(s.lines, 'up')) {
        const m = /^ip (?:-6 )?addr add (\S+) dev \S+$/.exec(up);
        if (m && parseCidr(m[1]!)) {
          iface.addresses.push(m[1]!);
        }
      }
      const gw = option(s.lines, 'gateway')[0];
      if (gw && iface.gateway === '') {
        iface.gateway = gw;
      }
    }
    const mtu = Number(option(s.lines, 'mtu')[0] ?? 0);
    if (mtu > 0) {
      iface.mtu = mtu;
    }
    for (const d of option(s.lines, 'dns-nameservers')) {
      iface.dns.push(...d.split(/\s+/).filter((x) => x && !iface.dns.includes(x)));
    }
    for (const d of option(s.lines, 'dns-search')) {
      iface.search.push(...d.split(/\s+/).filter((x) => x && !iface.search.includes(x)));
    }
  }
  return [...byName.values()];
}

/** The stanzas of one interface. Pure. */
export function renderIfaceStanzas(i: NetIface): string[] {
  const lines = [`auto ${i.name}`];
  const extra = (opts: string[]) => {
    if (i.mtu) {
      opts.push(`mtu ${i.mtu}`);
    }
    if (i.dns.length) {
      opts.push(`dns-nameservers ${i.dns.join(' ')}`);
    }
    if (i.search.length) {
      opts.push(`dns-search ${i.search.join(' ')}`);
    }
    return opts;
  };
  if (i.dhcp) {
    lines.push(`iface ${i.name} inet dhcp`, ...extra([]).map((o) => `    ${o}`));
    return lines;
  }
  const v4 = i.addresses.filter((a) => parseCidr(a)?.family === 4);
  const v6 = i.addresses.filter((a) => parseCidr(a)?.family === 6);
  let first = true;
  for (const [family, list] of [
    ['inet', v4],
    ['inet6', v6],
  ] as const) {
    if (list.length === 0) {
      continue;
    }
    const head = parseCidr(list[0]!)!;
    const opts = [
      `address ${head.address}`,
      `netmask ${family === 'inet' ? v4Netmask(head.prefix) : head.prefix}`,
    ];
    if (i.gateway && isIPv4(i.gateway) === (family === 'inet')) {
      opts.push(`gateway ${i.gateway}`);
    }
    for (const more of list.slice(1)) {
      const six = family === 'inet6' ? '-6 ' : '';
      opts.push(`up ip ${six}addr add ${more} dev ${i.name}`);
      opts.push(`down ip ${six}addr del ${more} dev ${i.name}`);
    }
    lines.push(
      `iface ${i.name} ${family} static`,
      ...(first ? extra(opts) : opts).map((o) => `    ${o}`),
    );
    first = false;
  }
  return lines;
}

/**
 * The interfaces file with `desired`'s stanzas replacing those of the same interfaces (their
 * `auto`/`allow-*` mentions too); everything else is kept as written. Pure.
 */
export function renderInterfaces(desired: readonly NetIface[], current: string | null): string {
  const names = new Set(desired.map((d) => d.name));
  const parsed = stanzas(current ?? '');
  const kept: string[] = [...parsed.preamble];
  if (current === null || current.trim() === '') {
    kept.length = 0;
    kept.push(`# ${HEADER}`, '', 'auto lo', 'iface lo inet loopback', '');
  }
  for (const s of parsed.stanzas) {
    if (s.kind === 'iface' && names.has(s.names[0]!)) {
      continue;
    }
    if (s.kind === 'auto' || s.kind.startsWith('allow-')) {
      const rest = s.names.filter((n) => !names.has(n));
      if (rest.length === 0) {
        continue;
      }
      if (rest.length !== s.names.length) {
        kept.push(`${s.kind} ${rest.join(' ')}`);
        continue;
      }
    }
    kept.push(...s.lines);
  }
  while (kept.length > 0 && kept.at(-1)!.trim() === '') {
    kept.pop();
  }
  const blocks = desired.map((d) => renderIfaceStanzas(d).join('\n'));
  return `${[kept.join('\n'), ...blocks].join('\n\n')}\n`;
}

export interface IfupdownPaths {
  interfaces_file: string;
  ifup: string;
  ifdown: string;
}

/** Whether an interfaces file holds a stanza for `name`. */
function hasIface(text: string | null | undefined, name: string): boolean {
  return (
    text !== null &&
    text !== undefined &&
    stanzas(text).stanzas.some((s) => s.kind === 'iface' && s.names[0] === name)
  );
}

export class IfupdownBackend implements NetworkBackendDriver {
  readonly kind: BackendKind = 'ifupdown';

  constructor(private readonly paths: IfupdownPaths) {}

  configFiles(): Promise<string[]> {
    return Promise.resolve([this.paths.interfaces_file]);
  }

  parse(files: FileSet): NetIface[] {
    return parseInterfaces(files.get(this.paths.interfaces_file) ?? '');
  }

  ownedPaths(): string[] {
    return [this.paths.interfaces_file];
  }

  render(desired: readonly NetIface[], current: FileSet): Map<string, string | null> {
    const file = this.paths.interfaces_file;
    return new Map([[file, renderInterfaces(desired, current.get(file) ?? null)]]);
  }

  down(names: readonly string[], current: FileSet): string[][] {
    const text = current.get(this.paths.interfaces_file);
    return names.filter((n) => hasIface(text, n)).map((n) => [this.paths.ifdown, '-f', n]);
  }

  up(names: readonly string[], applied: FileSet): string[][] {
    const text = applied.get(this.paths.interfaces_file);
    return names.filter((n) => hasIface(text, n)).map((n) => [this.paths.ifup, n]);
  }
}
