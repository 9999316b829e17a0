import { describe, expect, it } from '@jest/globals';
import {
  inPrefix,
  parseCidr,
  v4Netmask,
  v4PrefixOf,
  validateNetworkInterfaces,
  type NetIfaceInput,
} from './network-config.js';

const base: NetIfaceInput = {
  name: 'eth0',
  addressing: 'static',
  addresses: ['10.0.2.50/24'],
  gateway: '10.0.2.2',
  dnsServers: ['10.0.2.3'],
  searchDomains: ['example.com'],
  mtu: 1500,
};
const check = (over: Partial<NetIfaceInput>) => () =>
  validateNetworkInterfaces([{ ...base, ...over }]);

describe('network configuration validation', () => {
  it('should accept a static interface and keep its fields when all are valid', () => {
    expect(validateNetworkInterfaces([base])).toEqual([
      {
        name: 'eth0',
        dhcp: false,
        addresses: ['10.0.2.50/24'],
        gateway: '10.0.2.2',
        dns: ['10.0.2.3'],
        search: ['example.com'],
        mtu: 1500,
      },
    ]);
  });

  it('should accept DHCP with DNS and MTU and no addresses', () => {
    expect(
      validateNetworkInterfaces([
        { ...base, addressing: 'dhcp', addresses: [], gateway: '', mtu: 0 },
      ])[0],
    ).toMatchObject({ dhcp: true, addresses: [], mtu: 0 });
  });

  it.each([
    [{ name: '' }, 'interface name'],
    [{ name: 'eth0; rm -rf /' }, 'interface name'],
    [{ name: 'a-very-long-interface' }, 'interface name'],
    [{ name: '..' }, 'interface name'],
    [{ name: 'lo' }, 'loopback'],
    [{ addressing: 'bootp' }, 'addressing must be dhcp or static'],
    [{ addresses: [] }, 'static addressing needs at least one'],
    [{ addresses: ['10.0.2.50'] }, 'not an address with a prefix length'],
    [{ addresses: ['10.0.2.350/24'] }, 'not an address with a prefix length'],
    [{ addresses: ['10.0.2.50/33'] }, 'not an address with a prefix length'],
    [{ addresses: ['10.0.2.50/0'] }, 'not an address with a prefix length'],
    [{ addresses: ['fe80::1%eth0/64'] }, 'not an address with a prefix length'],
    [{ addresses: ['10.0.2.50/24', '10.0.2.50/24'] }, 'listed twice'],
    [{ gateway: '10.0.3.1' }, 'not inside any of the addresses'],
    [{ gateway: 'router' }, 'gateway: "router" is not an address'],
    [{ addressing: 'dhcp', addresses: ['10.0.2.50/24'], gateway: '' }, 'must be empty with dhcp'],
    [{ addressing: 'dhcp', addresses: [], gateway: '10.0.2.2' }, 'given by DHCP'],
    [{ dnsServers: ['dns.example.com'] }, 'dns_servers: "dns.example.com" is not an address'],
    [{ dnsServers: Array(9).fill('1.1.1.1') }, 'dns_servers: at most 8'],
    [{ searchDomains: ['bad_domain!'] }, 'is not a domain name'],
    [{ searchDomains: ['-bad.com'] }, 'is not a domain name'],
    [{ mtu: 100 }, 'mtu must be 0 (default) or 576-9000'],
    [{ mtu: 9001 }, 'mtu must be 0 (default) or 576-9000'],
    [{ mtu: 1500.5 }, 'mtu must be'],
  ])('should refuse %j naming the problem', (over, message) => {
    expect(check(over)).toThrow(message);
  });

  it('should refuse no interfaces, too many, and one named twice', () => {
    expect(() => validateNetworkInterfaces([])).toThrow('at least one interface');
    expect(() =>
      validateNetworkInterfaces(
        Array.from({ length: 17 }, (_, n) => ({ ...base, name: `eth${n}` })),
      ),
    ).toThrow('at most 16');
    expect(() => validateNetworkInterfaces([base, base])).toThrow('eth0 is named twice');
  });

  it('should accept IPv6 addresses and a gateway inside their prefix', () => {
    const [i] = validateNetworkInterfaces([
      { ...base, addresses: ['FD00::5/64', '10.0.2.50/24'], gateway: 'fd00::1' },
    ]);
    expect(i!.addresses).toEqual(['fd00::5/64', '10.0.2.50/24']);
    expect(i!.gateway).toBe('fd00::1');
  });
});

describe('address arithmetic', () => {
  it('should tell whether an address is inside a prefix for both families', () => {
    expect(inPrefix('10.0.2.2', '10.0.2.50/24')).toBe(true);
    expect(inPrefix('10.0.3.2', '10.0.2.50/24')).toBe(false);
    expect(inPrefix('10.0.3.2', '10.0.2.50/16')).toBe(true);
    expect(inPrefix('fd00::1', 'fd00::5/64')).toBe(true);
    expect(inPrefix('fd01::1', 'fd00::5/64')).toBe(false);
    expect(inPrefix('10.0.2.2', 'fd00::5/64')).toBe(false);
  });

  it('should convert between prefix lengths and netmasks', () => {
    expect(v4Netmask(24)).toBe('255.255.255.0');
    expect(v4Netmask(20)).toBe('255.255.240.0');
    expect(v4Netmask(32)).toBe('255.255.255.255');
    expect(v4PrefixOf('255.255.255.0')).toBe(24);
    expect(v4PrefixOf('255.255.240.0')).toBe(20);
    expect(v4PrefixOf('255.0.255.0')).toBeUndefined();
    expect(parseCidr('10.0.0.1/8')).toEqual({ address: '10.0.0.1', prefix: 8, family: 4 });
  });
});
