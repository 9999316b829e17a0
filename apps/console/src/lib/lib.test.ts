import { describe, expect, it } from 'vitest';
import { auditQuery, NO_FILTERS } from '../pages/audit';
import { filterVms } from '../pages/vm-list';
import { rolloutBodyOf } from '../pages/rollouts';
import type { TelemetryView, VmSummaryView } from '@lq/api';
import { formatBytes, formatDuration, share } from './format';
import { parseRoute, vmPath } from './router';
import { ratesFrom, sparklinePoints } from './sparkline';
import { SERIES_MAX, appendSample, seriesOf } from './telemetry';

describe('router', () => {
  it('should map paths to pages and back', () => {
    expect(parseRoute('/')).toEqual({ page: 'vms' });
    expect(parseRoute('/rollouts')).toEqual({ page: 'rollouts' });
    expect(parseRoute('/rollouts/abc')).toEqual({ page: 'rollouts', id: 'abc' });
    expect(parseRoute('/vms/vm-1')).toEqual({ page: 'vm', id: 'vm-1', tab: 'overview' });
    expect(parseRoute('/vms/vm%201/agent')).toEqual({ page: 'vm', id: 'vm 1', tab: 'agent' });
    expect(parseRoute('/vms/vm-1/nope')).toEqual({ page: 'not-found', path: '/vms/vm-1/nope' });
    expect(parseRoute('/audit')).toEqual({ page: 'audit' });
    expect(vmPath('vm-1', 'history')).toBe('/vms/vm-1/history');
    expect(vmPath('vm-1')).toBe('/vms/vm-1');
  });
});

describe('sparklinePoints', () => {
  it('should spread values over the width and map 0..max to bottom..top', () => {
    expect(sparklinePoints([0, 50, 100], 100, 10, 100)).toBe('0,10 50,5 100,0');
    expect(sparklinePoints([150, -5], 10, 10, 100)).toBe('0,0 10,10');
    expect(sparklinePoints([], 10, 10)).toBe('');
    expect(sparklinePoints([3], 10, 10)).toBe('10,0');
  });

  it('should turn counters into rates and skip a counter reset', () => {
    expect(
      ratesFrom([
        { at: 0, value: 0 },
        { at: 1000, value: 500 },
        { at: 3000, value: 1500 },
        { at: 4000, value: 10 },
      ]),
    ).toEqual([500, 500]);
  });
});

describe('telemetry series', () => {
  /** A report as the API sends it: every field, zero when not given. */
  const report = (over: Partial<TelemetryView> = {}): TelemetryView => ({
    cpu_percent: 0,
    cpu_count: 1,
    load1: 0,
    load5: 0,
    load15: 0,
    memory: null,
    disks: [],
    network: [],
    process_count: 0,
    uptime_seconds: 0,
    interfaces: [],
    ...over,
  });
  const disk = (mount_point: string, used_bytes: number, total_bytes: number) => ({
    mount_point,
    device: '',
    fs_type: 'ext4',
    used_bytes,
    total_bytes,
    available_bytes: total_bytes - used_bytes,
  });
  const nic = (name: string, rx_bytes: number, tx_bytes: number) => ({
    name,
    rx_bytes,
    tx_bytes,
    rx_packets: 0,
    tx_packets: 0,
  });

  it('should keep the last samples in order and ignore repeats', () => {
    let s = appendSample([], { at: 1, report: report({ cpu_percent: 1 }) });
    s = appendSample(s, { at: 1, report: report({ cpu_percent: 9 }) });
    expect(s.length).toBe(1);
    for (let i = 2; i < SERIES_MAX + 10; i += 1) {
      s = appendSample(s, { at: i, report: report({ cpu_percent: i }) });
    }
    expect(s.length).toBe(SERIES_MAX);
    expect(s[0]!.at).toBe(10);
  });

  it('should derive CPU, memory, root disk and network series', () => {
    const series = seriesOf([
      {
        at: 0,
        report: report({
          cpu_percent: 10,
          memory: {
            used_bytes: 50,
            total_bytes: 200,
            available_bytes: 150,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
          },
          disks: [disk('/boot', 9, 10), disk('/', 1, 4)],
          network: [nic('lo', 999, 999), nic('eth0', 0, 0)],
        }),
      },
      {
        at: 2000,
        report: report({ cpu_percent: 20, network: [nic('eth0', 4000, 1000)] }),
      },
    ]);
    expect(series).toEqual({ cpu: [10, 20], memory: [25], disk: [25], rx: [2000], tx: [500] });
  });
});

describe('format', () => {
  it('should format bytes, durations and shares', () => {
    expect([
      formatBytes(0),
      formatBytes(1536),
      formatBytes(5 * 1024 ** 3),
      formatBytes(null),
    ]).toEqual(['0 B', '1.5 KiB', '5.0 GiB', '—']);
    expect([formatDuration(12), formatDuration(1500), formatDuration(125_000)]).toEqual([
      '12 ms',
      '1.50 s',
      '2 min 5 s',
    ]);
    expect([share(1, 4), share(1, 0), share(null, 4)]).toEqual([25, undefined, undefined]);
  });
});

describe('auditQuery', () => {
  it('should leave out empty filters and send times as ISO 8601', () => {
    expect(auditQuery(NO_FILTERS, { limit: '100' })).toBe('limit=100');
    const q = new URLSearchParams(
      auditQuery(
        { ...NO_FILTERS, actor: ' olivia ', vmId: 'vm-1', from: '2026-01-02T03:04' },
        { format: 'csv' },
      ),
    );
    expect(q.get('actor')).toBe('olivia');
    expect(q.get('vm_id')).toBe('vm-1');
    expect(q.get('from')).toBe(new Date('2026-01-02T03:04').toISOString());
    expect(q.get('format')).toBe('csv');
  });
});

describe('rolloutBodyOf', () => {
  it('should target VM ids when given, else labels, with amounts as numbers or percentages', () => {
    const form = {
      version: '0.2.0',
      vms: 'vm-1, vm-2 ,',
      labels: 'env=prod',
      canary: '2',
      maxConcurrency: '20%',
      maxErrors: '1',
    };
    expect(rolloutBodyOf(form)).toEqual({
      version: '0.2.0',
      target: { vm_ids: ['vm-1', 'vm-2'] },
      canary: 2,
      max_concurrency: '20%',
      max_errors: 1,
    });
    expect(rolloutBodyOf({ ...form, vms: ' ' }).target).toEqual({ labels: 'env=prod' });
  });
});

describe('filterVms', () => {
  it('should match id, name, hostname, project, node, OS or address', () => {
    const vm = (id: string, over: Partial<VmSummaryView> = {}): VmSummaryView => ({
      id,
      name: '',
      hostname: '',
      project_id: 'default',
      node_id: 'node-1',
      node_stale: false,
      agent_state: 'ready',
      agent_version: '',
      agent_target: '',
      agent_outdated: false,
      os: 'Debian',
      ips: [],
      cpu_percent: null,
      memory_used_bytes: null,
      memory_total_bytes: null,
      connected_since: null,
      last_seen: null,
      telemetry_at: null,
      ...over,
    });
    const vms = [
      vm('a', { ips: ['10.0.0.5'] }),
      vm('b', { project_id: 'payments' }),
      vm('c', { name: 'web-dup' }),
    ];
    expect(filterVms(vms, '10.0.0').map((v) => v.id)).toEqual(['a']);
    expect(filterVms(vms, 'DUP').map((v) => v.id)).toEqual(['c']);
    expect(filterVms(vms, 'PAY').map((v) => v.id)).toEqual(['b']);
    expect(filterVms(vms, ' ').length).toBe(3);
  });
});
