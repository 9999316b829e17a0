import { describe, expect, it } from '@jest/globals';
import { UsageError } from '../errors.js';
import type { NetworkInterfaceView, TelemetryView, VmView } from '@lq/api';
import { addressesOf, applyLabelArgs, vmDetails, vmsTable } from './vms.command.js';

const nic = (name: string, ipv4: string[], ipv6: string[] = []): NetworkInterfaceView => ({
  name,
  mac: '',
  ipv4,
  ipv6,
});

/** A VM as GET /api/vms shows it: every field, '' or null when unknown. */
function vmOf(over: Partial<VmView> & { id: string }): VmView {
  return {
    name: '',
    node_id: '',
    project_id: '',
    agent_state: '',
    agent_version: '',
    agent_target: '',
    agent_outdated: false,
    agent_last_update: null,
    capabilities: [],
    hostname: '',
    os: null,
    interfaces: [],
    last_seen: null,
    telemetry: null,
    telemetry_at: null,
    labels: {},
    ...over,
  };
}

const telemetry: TelemetryView = {
  cpu_percent: 12.345,
  cpu_count: 4,
  load1: 0,
  load5: 0,
  load15: 0,
  memory: {
    total_bytes: 8589934592,
    used_bytes: 2147483648,
    available_bytes: 6442450944,
    swap_total_bytes: 0,
    swap_used_bytes: 0,
  },
  disks: [],
  network: [],
  process_count: 90,
  uptime_seconds: 60,
  interfaces: [
    nic('lo', ['127.0.0.1/8'], ['::1/128']),
    nic('eth0', ['10.0.0.5/24'], ['fe80::1/64', '2001:db8::5/64']),
  ],
};

const vm = vmOf({
  id: 'vm-1',
  node_id: 'node-1',
  agent_state: 'ready',
  agent_version: '0.1.0',
  hostname: 'web-1',
  os: {
    name: 'Debian GNU/Linux',
    version: '12',
    id: 'debian',
    pretty_name: 'Debian GNU/Linux 12 (bookworm)',
    kernel_release: '6.1.0',
    kernel_version: '',
    arch: 'x86_64',
  },
  interfaces: [nic('eth0', ['10.0.0.9/24'])],
  telemetry,
  project_id: 'demo',
  labels: { role: 'db', env: 'prod' },
});

describe('vms output', () => {
  it('should prefer the telemetry’s current addresses, without loopback and link-local', () => {
    expect(addressesOf(vm)).toEqual(['10.0.0.5', '2001:db8::5']);
    expect(addressesOf({ ...vm, telemetry: null })).toEqual(['10.0.0.9']);
  });

  it('should show one row per VM with CPU and memory percentages', () => {
    expect(vmsTable([vm, vmOf({ id: 'vm-2', agent_state: 'connecting' })])).toBe(
      [
        'ID    PROJECT  NODE    AGENT       VERSION  OS                            IPS                   CPU%  MEM%  LABELS',
        'vm-1  demo     node-1  ready       0.1.0    Debian GNU/Linux 12 (bookwo…  10.0.0.5,2001:db8::5  12.3  25.0  env=prod,role=db',
        'vm-2  -        -       connecting  -        -                             -                        -     -  -',
        '',
      ].join('\n'),
    );
  });

  it('should mark an agent older than the newest release as outdated', () => {
    const old = vmOf({ id: 'vm-3', agent_version: '0.1.0', agent_target: 'linux-amd64' });
    expect(vmsTable([{ ...old, agent_outdated: true }])).toContain('0.1.0 linux-amd64 (outdated)');
    expect(vmsTable([old])).not.toContain('outdated');
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
