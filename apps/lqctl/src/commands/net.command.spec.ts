import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NetworkConfigureView } from '@lq/api';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { netSetBody, netSetCommand, netShowCommand } from './net.command.js';
import { command, testContext, testServer } from './test-context.js';

describe('lqctl net', () => {
  let server: Server;
  let url: string;
  const seen: Array<{ method: string; url: string; body: unknown }> = [];
  let outcome: NetworkConfigureView['outcome'] = 'confirmed';

  beforeAll(async () => {
    ({ server, url } = await testServer((req, res, body) => {
      seen.push({ method: req.method!, url: req.url!, body: body && JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/json' });
      const iface = {
        name: 'eth0',
        addressing: 'static',
        addresses: ['10.0.2.50/24'],
        gateway: '10.0.2.2',
        dns_servers: [],
        search_domains: [],
        mtu: null,
      };
      res.end(
        JSON.stringify(
          req.method === 'GET'
            ? {
                vm_id: 'vm-1',
                backend: 'ifupdown',
                interfaces: [iface],
                live: [{ name: 'eth0', mac: '', ipv4: ['10.0.2.50/24'], ipv6: [] }],
                config_files: ['/etc/network/interfaces'],
                last_apply: null,
              }
            : {
                vm_id: 'vm-1',
                outcome,
                apply_id: 'a',
                backend: 'ifupdown',
                files: [{ path: '/etc/network/interfaces', content: 'auto eth0\n' }],
                previous: [{ ...iface, addressing: 'dhcp', addresses: [], gateway: null }],
                interfaces: [iface],
                confirm_deadline: null,
                status:
                  outcome === 'rolled_back' ? { reason: 'confirmation deadline passed' } : null,
              },
        ),
      );
    }));
  });

  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('should build the PUT body from the flags', () => {
    expect(
      netSetBody(
        command([
          'net',
          'set',
          'vm-1',
          '-i',
          'eth0',
          '-a',
          '10.0.2.50/24',
          '-g',
          '10.0.2.2',
          '--dns',
          '1.1.1.1',
          '--dns',
          '8.8.8.8',
          '--search',
          'example.com',
          '--mtu',
          '1400',
          '--confirm-timeout',
          '2m',
          '--manual-confirm',
        ]),
      ),
    ).toEqual({
      interfaces: [
        {
          name: 'eth0',
          addressing: 'static',
          addresses: ['10.0.2.50/24'],
          gateway: '10.0.2.2',
          dns_servers: ['1.1.1.1', '8.8.8.8'],
          search_domains: ['example.com'],
          mtu: 1400,
        },
      ],
      confirm_timeout_seconds: 120,
      manual_confirm: true,
    });
  });

  it.each([
    [['net', 'set', 'vm-1', '--dhcp'], '--iface'],
    [['net', 'set', 'vm-1', '-i', 'eth0'], 'either --dhcp or'],
    [['net', 'set', 'vm-1', '-i', 'eth0', '--dhcp', '-a', '10.0.0.1/8'], 'either --dhcp or'],
    [['net', 'set', 'vm-1', '-i', 'eth0', '--dhcp', '--mtu', '20'], '--mtu'],
  ])('should refuse %j as a usage error naming the flag', (argv, message) => {
    expect(() => netSetBody(command(argv))).toThrow(UsageError);
    expect(() => netSetBody(command(argv))).toThrow(message);
  });

  it('should show the configuration, and apply with exit 1 when the guest rolled back', async () => {
    const show = testContext(url);
    expect(await netShowCommand(show.ctx, command(['net', 'show', 'vm-1']))).toBe(Exit.OK);
    expect(show.out()).toContain('vm-1: ifupdown (/etc/network/interfaces)');
    expect(show.out()).toContain('configured eth0: 10.0.2.50/24 via 10.0.2.2');
    const set = testContext(url);
    const argv = ['net', 'set', 'vm-1', '-i', 'eth0', '-a', '10.0.2.50/24'];
    expect(await netSetCommand(set.ctx, command(argv))).toBe(Exit.OK);
    expect(set.out()).toBe(
      'vm-1: eth0: dhcp -> eth0: 10.0.2.50/24 via 10.0.2.2 (ifupdown): confirmed\n',
    );
    expect(seen.at(-1)).toMatchObject({ method: 'PUT', url: '/api/vms/vm-1/network' });
    outcome = 'rolled_back';
    const back = testContext(url);
    expect(await netSetCommand(back.ctx, command(argv))).toBe(Exit.FAILED);
    expect(back.out()).toContain('rolled_back (confirmation deadline passed)');
  });
});
