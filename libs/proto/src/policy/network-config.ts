// One interface's network configuration (PROTOCOL.md §11) as the agent and the control plane
// model it, its strict validation (both check a request before acting on it),
// and the address arithmetic the backends and the validation share. Pure: no I/O.
import { isIPv4, isIPv6 } from 'node:net';

/** One interface as a backend reads or writes it. */
export interface NetIface {
  name: string;
  dhcp: boolean;
  /** CIDR (static only). */
  addresses: string[];
  /** '' when none. */
  gateway: string;
  dns: string[];
  search: string[];
  /** 0: the stack's default. */
  mtu: number;
}

export const NET_MAX_INTERFACES = 16;
export const NET_MAX_ADDRESSES = 16;
export const NET_MAX_DNS = 8;
export const NET_MAX_SEARCH = 8;
export const NET_MTU_MIN = 576;
export const NET_MTU_MAX = 9000;

/** A validation failure naming the interface and field. */
export class NetworkConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkConfigError';
  }
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const DOMAIN_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function checkNetInterfaceName(name: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..') {
    throw new NetworkConfigError(
      `interface name ${JSON.stringify(name)} must be 1-15 of A-Z a-z 0-9 _ . - (not . or ..)`,
    );
  }
  if (name === 'lo') {
    throw new NetworkConfigError('interface lo (loopback) cannot be configured');
  }
}

/** An IPv4 or IPv6 address with its prefix length, parsed from CIDR; undefined when invalid. */
export function parseCidr(
  cidr: string,
): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const slash = cidr.indexOf('/');
  if (slash < 0) {
    return undefined;
  }
  const address = cidr.slice(0, slash);
  const bits = cidr.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) {
    return undefined;
  }
  const prefix = Number(bits);
  if (isIPv4(address) && prefix >= 1 && prefix <= 32) {
    return { address, prefix, family: 4 };
  }
  if (isIPv6(address) && !address.includes('%') && prefix >= 1 && prefix <= 128) {
    return { address: address.toLowerCase(), prefix, family: 6 };
  }
  return undefined;
}

function v4ToBigInt(a: string): bigint {
  return a.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBigInt(a: string): bigint {
  let text = a;
  // An embedded IPv4 tail (::ffff:1.2.3.4) as two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = v4ToBigInt(v4[1]!);
    text = `${text.slice(0, -v4[1]!.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

/** Whether `address` lies inside `cidr`'s prefix (same family). */
export function inPrefix(address: string, cidr: string): boolean {
  const net = parseCidr(cidr);
  if (!net) {
    return false;
  }
  if (net.family === 4 && isIPv4(address)) {
    const shift = BigInt(32 - net.prefix);
    return v4ToBigInt(address) >> shift === v4ToBigInt(net.address) >> shift;
  }
  if (net.family === 6 && isIPv6(address)) {
    const shift = BigInt(128 - net.prefix);
    return v6ToBigInt(address) >> shift === v6ToBigInt(net.address) >> shift;
  }
  return false;
}

/** 24 → 255.255.255.0 */
export function v4Netmask(prefix: number): string {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.');
}

/** 255.255.255.0 → 24; undefined when not a contiguous mask. */
export function v4PrefixOf(netmask: string): number | undefined {
  if (!isIPv4(netmask)) {
    return undefined;
  }
  const n = Number(v4ToBigInt(netmask));
  const bits = n.toString(2).padStart(32, '0');
  return /^1*0*$/.test(bits) ? (bits.indexOf('0') === -1 ? 32 : bits.indexOf('0')) : undefined;
}

function checkDomain(domain: string, where: string): void {
  if (
    domain.length === 0 ||
    domain.length > 253 ||
    !domain
      .replace(/\.$/, '')
      .split('.')
      .every((label) => DOMAIN_LABEL.test(label))
  ) {
    throw new NetworkConfigError(`${where}: ${JSON.stringify(domain)} is not a domain name`);
  }
}

/** What a request carries for one interface, before validation. */
export interface NetIfaceInput {
  name: string;
  /** 'dhcp' | 'static' | anything else (refused). */
  addressing: string;
  addresses: readonly string[];
  gateway: string;
  dnsServers: readonly string[];
  searchDomains: readonly string[];
  mtu: number;
}

/**
 * Checks a configure request's interfaces strictly (PROTOCOL.md §11) and returns them in the
 * agent's model; throws NetworkConfigError naming the interface and field at fault.
 */
export function validateNetworkInterfaces(input: readonly NetIfaceInput[]): NetIface[] {
  if (input.length === 0) {
    throw new NetworkConfigError('interfaces: name at least one interface');
  }
  if (input.length > NET_MAX_INTERFACES) {
    throw new NetworkConfigError(`interfaces: at most ${NET_MAX_INTERFACES} (got ${input.length})`);
  }
  const seen = new Set<string>();
  return input.map((i, n) => {
    checkNetInterfaceName(i.name);
    if (seen.has(i.name)) {
      throw new NetworkConfigError(`interfaces[${n}]: ${i.name} is named twice`);
    }
    seen.add(i.name);
    const at = (field: string) => `interface ${i.name}: ${field}`;
    if (i.addressing !== 'dhcp' && i.addressing !== 'static') {
      throw new NetworkConfigError(`${at('addressing')} must be dhcp or static`);
    }
    const dhcp = i.addressing === 'dhcp';
    if (dhcp && i.addresses.length > 0) {
      throw new NetworkConfigError(`${at('addresses')} must be empty with dhcp`);
    }
    if (dhcp && i.gateway !== '') {
      throw new NetworkConfigError(`${at('gateway')} is given by DHCP; leave it empty`);
    }
    if (!dhcp && i.addresses.length === 0) {
      throw new NetworkConfigError(`${at('addresses')}: static addressing needs at least one`);
    }
    if (i.addresses.length > NET_MAX_ADDRESSES) {
      throw new NetworkConfigError(`${at('addresses')}: at most ${NET_MAX_ADDRESSES}`);
    }
    const addresses = i.addresses.map((a) => {
      const p = parseCidr(a);
      if (!p) {
        throw new NetworkConfigError(
          `${at('addresses')}: ${JSON.stringify(a)} is not an address with a prefix length (e.g. 10.0.2.50/24, fd00::5/64)`,
        );
      }
      return `${p.address}/${p.prefix}`;
    });
    if (new Set(addresses).size !== addresses.length) {
      throw new NetworkConfigError(`${at('addresses')}: an address is listed twice`);
    }
    const gateway = i.gateway.toLowerCase();
    if (gateway !== '') {
      if (!isIPv4(gateway) && !isIPv6(gateway)) {
        throw new NetworkConfigError(
          `${at('gateway')}: ${JSON.stringify(i.gateway)} is not an address`,
        );
      }
      if (!addresses.some((a) => inPrefix(gateway, a))) {
        throw new NetworkConfigError(
          `${at('gateway')}: ${gateway} is not inside any of the addresses' prefixes (${addresses.join(', ')})`,
        );
      }
    }
    if (i.dnsServers.length > NET_MAX_DNS) {
      throw new NetworkConfigError(`${at('dns_servers')}: at most ${NET_MAX_DNS}`);
    }
    const dns = i.dnsServers.map((d) => {
      if (!isIPv4(d) && !isIPv6(d)) {
        throw new NetworkConfigError(
          `${at('dns_servers')}: ${JSON.stringify(d)} is not an address`,
        );
      }
      return d.toLowerCase();
    });
    if (i.searchDomains.length > NET_MAX_SEARCH) {
      throw new NetworkConfigError(`${at('search_domains')}: at most ${NET_MAX_SEARCH}`);
    }
    for (const s of i.searchDomains) {
      checkDomain(s, at('search_domains'));
    }
    if (!Number.isInteger(i.mtu) || (i.mtu !== 0 && (i.mtu < NET_MTU_MIN || i.mtu > NET_MTU_MAX))) {
      throw new NetworkConfigError(
        `${at('mtu')} must be 0 (default) or ${NET_MTU_MIN}-${NET_MTU_MAX} (got ${i.mtu})`,
      );
    }
    return {
      name: i.name,
      dhcp,
      addresses,
      gateway,
      dns,
      search: [...i.searchDomains],
      mtu: i.mtu,
    };
  });
}

/** A blank interface (DHCP, nothing else): what a parser starts from. */
export function blankNetIface(name: string): NetIface {
  return { name, dhcp: false, addresses: [], gateway: '', dns: [], search: [], mtu: 0 };
}
