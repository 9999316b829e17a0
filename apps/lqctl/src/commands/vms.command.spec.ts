import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../errors.js';
import { addressesOf, applyLabelArgs, vmDetails, vmsTable, type VmJson } from './vms.command.js';

const vm: VmJson = {
  id: 'vm-1',
  nodeId: 'node-1',
  agentState: 'ready',
  agentVersion: '0.1.0',
  hostname: 'web-1',
  os: { prettyName: 'Debian GNU/Linux 12 (bookworm)', kernelRelease: '6.1.0', arch: 'x86_64' },
  interfaces: [{ name: 'eth0', ipv4: ['10.0.0.9/24'] }],
  telemetry: {
    cpuPercent: 12.345,
    cpuCount: 4,
    memory: { totalBytes: '8589934592', usedBytes: '2147483648' },
    interfaces: [
      { name: 'lo', ipv4: ['127.0.0.1/8'], ipv6: ['::1/128'] },
      { name: 'eth0', ipv4: ['10.0.0.5/24'], ipv6: ['fe80::1/64', '2001:db8::5/64'] },
    ],
  },
  projectId: 'demo',
  labels: { role: 'db', env: 'prod' },
};

describe('vms output', () => {
  it('should prefer the telemetry’s current addresses, without loopback and link-local', () => {
    expect(addressesOf(vm)).toEqual(['10.0.0.5', '2001:db8::5']);
    expect(addressesOf({ ...vm, telemetry: undefined })).toEqual(['10.0.0.9']);
  });

  it('should show one row per VM with CPU and memory percentages', () => {
    expect(vmsTable([vm, { id: 'vm-2', agentState: 'connecting' }])).toBe(
      [
        'ID    PROJECT  NODE    AGENT       OS                            IPS                   CPU%  MEM%',
        'vm-1  demo     node-1  ready       Debian GNU/Linux 12 (bookwo…  10.0.0.5,2001:db8::5  12.3  25.0',
        'vm-2  -        -       connecting  -                             -                        -     -',
        '',
      ].join('\n'),
    );
  });

  it('should show labels sorted in the details', () => {
    const text = vmDetails(vm);
    expect(text).toContain('labels:         env=prod, role=db\n');
    expect(text).toContain('memory:         2.00 GiB of 8.00 GiB used (25.0%)\n');
  });
});

describe('applyLabelArgs', () => {
  it('should set key=value, remove key- and keep the rest unless replacing', () => {
    expect(
      applyLabelArgs({ env: 'dev', team: 'a' }, ['env=prod', 'team-', 'x=a=b'], false),
    ).toEqual({ env: 'prod', x: 'a=b' });
    expect(applyLabelArgs({ env: 'dev' }, ['role=db'], true)).toEqual({ role: 'db' });
    expect(() => applyLabelArgs({}, ['novalue'], false)).toThrow(UsageError);
  });
});
