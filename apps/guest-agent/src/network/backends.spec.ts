// Each backend's generated file, and what its parser reads back (pure logic: no network is
// touched; the files are strings).
import { describe, expect, it } from '@jest/globals';
import type { NetIface } from '@lq/proto';
import { IfupdownBackend, parseInterfaces, renderInterfaces } from './ifupdown.backend.js';
import { parseYaml } from './mini-yaml.js';
import {
  NetworkManagerBackend,
  parseKeyfile,
  profileUuid,
  renderKeyfile,
} from './network-manager.backend.js';
import { NetworkdBackend, parseNetworkUnit, renderNetworkUnit } from './networkd.backend.js';
import { NetplanBackend, parseNetplan, renderNetplan } from './netplan.backend.js';

const STATIC: NetIface = {
  name: 'eth0',
  dhcp: false,
  addresses: ['10.0.2.50/24'],
  gateway: '10.0.2.2',
  dns: ['10.0.2.3', '1.1.1.1'],
  search: ['example.com', 'lab.example.com'],
  mtu: 1400,
};
const DHCP: NetIface = {
  name: 'ens4',
  dhcp: true,
  addresses: [],
  gateway: '',
  dns: [],
  search: [],
  mtu: 0,
};
const DUAL: NetIface = {
  ...STATIC,
  addresses: ['10.0.2.50/24', '10.0.2.51/24', 'fd00::50/64'],
  dns: ['10.0.2.3'],
  search: [],
};

describe('ifupdown backend (/etc/network/interfaces)', () => {
  const EXISTING = [
    '# The loopback network interface',
    'auto lo',
    'iface lo inet loopback',
    '',
    'auto eth0 eth1',
    'iface eth0 inet dhcp',
    '',
    'iface eth1 inet static',
    '    address 192.168.1.10',
    '    netmask 255.255.255.0',
    '    gateway 192.168.1.1',
    '',
    'allow-hotplug eth0',
    '',
  ].join('\n');

  it('should write a static stanza with address, netmask, gateway, mtu and DNS options', () => {
    expect(renderInterfaces([STATIC], null)).toBe(
      [
        '# Written by the LimiQuantix guest agent (network.configure); changes here are replaced on the next one.',
        '',
        'auto lo',
        'iface lo inet loopback',
        '',
        'auto eth0',
        'iface eth0 inet static',
        '    address 10.0.2.50',
        '    netmask 255.255.255.0',
        '    gateway 10.0.2.2',
        '    mtu 1400',
        '    dns-nameservers 10.0.2.3 1.1.1.1',
        '    dns-search example.com lab.example.com',
        '',
      ].join('\n'),
    );
  });

  it('should replace only the named interface, keeping other stanzas and auto lines', () => {
    const out = renderInterfaces([STATIC], EXISTING);
    expect(out).toContain('auto lo\niface lo inet loopback');
    expect(out).toContain('auto eth1\n');
    expect(out).toContain('iface eth1 inet static\n    address 192.168.1.10');
    expect(out).not.toContain('iface eth0 inet dhcp');
    expect(out).not.toContain('allow-hotplug eth0');
    expect(out.match(/auto eth0/g)).toHaveLength(1);
    expect(out.endsWith('    dns-search example.com lab.example.com\n')).toBe(true);
  });

  it('should add further IPv4 addresses with up/down lines and IPv6 in an inet6 stanza', () => {
    const out = renderInterfaces([DUAL], null);
    expect(out).toContain(
      '    up ip addr add 10.0.2.51/24 dev eth0\n    down ip addr del 10.0.2.51/24 dev eth0',
    );
    expect(out).toContain('iface eth0 inet6 static\n    address fd00::50\n    netmask 64');
  });

  it('should write a dhcp stanza', () => {
    expect(renderInterfaces([DHCP], '')).toContain('auto ens4\niface ens4 inet dhcp\n');
  });

  it('should read back what it wrote, and the stanzas it kept', () => {
    const text = renderInterfaces([DUAL, DHCP], EXISTING);
    const parsed = parseInterfaces(text);
    expect(parsed.find((i) => i.name === 'eth0')).toEqual({ ...DUAL, mtu: 1400 });
    expect(parsed.find((i) => i.name === 'ens4')).toEqual(DHCP);
    expect(parsed.find((i) => i.name === 'eth1')).toMatchObject({
      addresses: ['192.168.1.10/24'],
      gateway: '192.168.1.1',
    });
    expect(parsed.map((i) => i.name)).not.toContain('lo');
  });

  it('should ifdown only interfaces the old file has, and ifup those the new one has', () => {
    const b = new IfupdownBackend({
      interfaces_file: '/e/i',
      ifup: '/s/ifup',
      ifdown: '/s/ifdown',
    });
    const old = new Map([['/e/i', 'auto lo\niface lo inet loopback\n']]);
    const next = b.render([STATIC], old);
    expect(b.down(['eth0'], old)).toEqual([]);
    expect(b.up(['eth0'], next)).toEqual([['/s/ifup', 'eth0']]);
    expect(b.down(['eth0'], next)).toEqual([['/s/ifdown', '-f', 'eth0']]);
  });
});

describe('netplan backend', () => {
  it('should write a netplan document with addresses, a default route, nameservers and mtu', () => {
    expect(renderNetplan([STATIC])).toBe(
      [
        '# Written by the LimiQuantix guest agent (network.configure); changes here are replaced on the next one.',
        'network:',
        '  version: 2',
        '  ethernets:',
        '    eth0:',
        '      dhcp4: false',
        '      addresses:',
        '        - "10.0.2.50/24"',
        '      routes:',
        '        - to: default',
        '          via: "10.0.2.2"',
        '      nameservers:',
        '        addresses: ["10.0.2.3", "1.1.1.1"]',
        '        search: ["example.com", "lab.example.com"]',
        '      mtu: 1400',
        '',
      ].join('\n'),
    );
  });

  it('should read back what it wrote', () => {
    expect(parseNetplan([renderNetplan([DUAL, DHCP])])).toEqual([DHCP, DUAL]);
  });

  it('should read an installer file with gateway4 and flow lists, a later file overriding it', () => {
    const installer = [
      '# This is the network config written by subiquity',
      'network:',
      '  ethernets:',
      '    eth0:',
      '      addresses: [192.168.1.10/24]',
      '      gateway4: 192.168.1.1',
      "      nameservers: {addresses: [192.168.1.1], search: ['corp']}",
      '    ens4:',
      '      dhcp4: true',
      '  version: 2',
    ].join('\n');
    const parsed = parseNetplan([installer]);
    expect(parsed).toEqual([
      {
        ...DHCP,
        name: 'eth0',
        dhcp: false,
        addresses: ['192.168.1.10/24'],
        gateway: '192.168.1.1',
        dns: ['192.168.1.1'],
        search: ['corp'],
      },
      DHCP,
    ]);
    expect(parseNetplan([installer, renderNetplan([STATIC])])[0]).toEqual(STATIC);
  });

  it('should keep interfaces configured earlier in its own file', () => {
    const b = new NetplanBackend({ netplan_dir: '/etc/netplan', netplan: '/usr/sbin/netplan' });
    const file = '/etc/netplan/90-limiquantix.yaml';
    const first = b.render([DHCP], new Map([[file, null]]));
    const second = b.render([STATIC], first);
    expect(parseNetplan([second.get(file)!])).toEqual([DHCP, STATIC]);
    expect(b.up()).toEqual([
      ['/usr/sbin/netplan', 'generate'],
      ['/usr/sbin/netplan', 'apply'],
    ]);
  });

  it('should parse block lists of maps and nested maps', () => {
    expect(
      parseYaml('a:\n  - to: default\n    via: x\n  - y\nb:\n  c: "d # not a comment" # comment\n'),
    ).toEqual({ a: [{ to: 'default', via: 'x' }, 'y'], b: { c: 'd # not a comment' } });
  });
});

describe('NetworkManager backend (keyfiles)', () => {
  it('should write a keyfile bound to the interface with manual addresses, gateway and DNS', () => {
    const text = renderKeyfile(STATIC);
    expect(text).toContain(
      `[connection]\nid=lq-eth0\nuuid=${profileUuid('eth0')}\ntype=ethernet\ninterface-name=eth0\n`,
    );
    expect(text).toContain('autoconnect-priority=100');
    expect(text).toContain('[ethernet]\nmtu=1400\n');
    expect(text).toContain(
      '[ipv4]\nmethod=manual\naddress1=10.0.2.50/24\ngateway=10.0.2.2\ndns=10.0.2.3;1.1.1.1;\nignore-auto-dns=true\ndns-search=example.com;lab.example.com;\n',
    );
    expect(text).toContain('[ipv6]\nmethod=auto\n');
  });

  it('should write method=auto for DHCP and IPv6 addresses in [ipv6]', () => {
    expect(renderKeyfile(DHCP)).toContain('[ipv4]\nmethod=auto\n');
    expect(renderKeyfile(DUAL)).toContain('[ipv6]\nmethod=manual\naddress1=fd00::50/64\n');
  });

  it('should read back what it wrote', () => {
    expect(parseKeyfile(renderKeyfile(DUAL))?.iface).toEqual(DUAL);
    expect(parseKeyfile(renderKeyfile(DHCP))?.iface).toEqual(DHCP);
    expect(profileUuid('eth0')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it('should prefer its own profile and hand the interface back when its file is gone', () => {
    const b = new NetworkManagerBackend({ nm_connections_dir: '/nm', nmcli: '/usr/bin/nmcli' });
    const guestOwn =
      '[connection]\nid=Wired connection 1\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=auto\n';
    const files = new Map([
      ['/nm/Wired connection 1.nmconnection', guestOwn],
      ['/nm/lq-eth0.nmconnection', renderKeyfile(STATIC)],
    ]);
    expect(b.parse(files)).toEqual([STATIC]);
    expect(b.up(['eth0'], new Map([['/nm/lq-eth0.nmconnection', 'x']]))).toEqual([
      ['/usr/bin/nmcli', 'connection', 'reload'],
      ['/usr/bin/nmcli', 'connection', 'up', 'lq-eth0'],
    ]);
    expect(b.up(['eth0'], new Map([['/nm/lq-eth0.nmconnection', null]]))).toEqual([
      ['/usr/bin/nmcli', 'connection', 'reload'],
      ['/usr/bin/nmcli', 'device', 'connect', 'eth0'],
    ]);
  });
});

describe('systemd-networkd backend', () => {
  it('should write a .network unit matching the interface', () => {
    expect(renderNetworkUnit(STATIC)).toBe(
      [
        '# Written by the LimiQuantix guest agent (network.configure); changes here are replaced on the next one.',
        '[Match]',
        'Name=eth0',
        '',
        '[Link]',
        'MTUBytes=1400',
        '',
        '[Network]',
        'DHCP=no',
        'Address=10.0.2.50/24',
        'Gateway=10.0.2.2',
        'DNS=10.0.2.3',
        'DNS=1.1.1.1',
        'Domains=example.com lab.example.com',
        '',
      ].join('\n'),
    );
    expect(renderNetworkUnit(DHCP)).toContain('[Network]\nDHCP=ipv4\n');
  });

  it('should read back what it wrote, the first matching file winning', () => {
    expect(parseNetworkUnit(renderNetworkUnit(DUAL))).toEqual(DUAL);
    const b = new NetworkdBackend({ networkd_dir: '/n', networkctl: '/usr/bin/networkctl' });
    const files = new Map([
      ['/n/50-cloud.network', '[Match]\nName=eth0\n[Network]\nDHCP=yes\n'],
      ['/n/10-lq-eth0.network', renderNetworkUnit(STATIC)],
      ['/n/99-all.network', '[Match]\nName=en*\n[Network]\nDHCP=yes\n'],
    ]);
    expect(b.parse(files)).toEqual([STATIC]);
    expect(b.ownedPaths(['eth0'])).toEqual(['/n/10-lq-eth0.network']);
    expect(b.up(['eth0'])).toEqual([
      ['/usr/bin/networkctl', 'reload'],
      ['/usr/bin/networkctl', 'reconfigure', 'eth0'],
    ]);
  });
});
