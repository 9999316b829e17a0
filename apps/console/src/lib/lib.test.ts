import { describe, expect, it } from 'vitest';
import { auditQuery, NO_FILTERS } from '../pages/audit';
import { filterVms } from '../pages/vm-list';
import type { VmSummary } from '../api/types';
import { formatBytes, formatDuration, share } from './format';
import { parseRoute, vmPath } from './router';
import { ratesFrom, sparklinePoints } from './sparkline';
import { SERIES_MAX, appendSample, seriesOf } from './telemetry';

describe('router', () => {
  it('should map paths to pages and back', () => {
    expect(parseRoute('/')).toEqual({ page: 'vms' });
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
  it('should keep the last samples in order and ignore repeats', () => {
    let s = appendSample([], { at: 1, report: { cpuPercent: 1 } });
    s = appendSample(s, { at: 1, report: { cpuPercent: 9 } });
    expect(s.length).toBe(1);
    for (let i = 2; i < SERIES_MAX + 10; i += 1) {
      s = appendSample(s, { at: i, report: { cpuPercent: i } });
    }
    expect(s.length).toBe(SERIES_MAX);
    expect(s[0]!.at).toBe(10);
  });

  it('should derive CPU, memory, root disk and network series', () => {
    const series = seriesOf([
      {
        at: 0,
        report: {
          cpuPercent: 10,
          memory: { usedBytes: '50', totalBytes: '200' },
          disks: [
            { mountPoint: '/boot', usedBytes: '9', totalBytes: '10' },
            { mountPoint: '/', usedBytes: '1', totalBytes: '4' },
          ],
          network: [
            { name: 'lo', rxBytes: '999', txBytes: '999' },
            { name: 'eth0', rxBytes: '0', txBytes: '0' },
          ],
        },
      },
      {
        at: 2000,
        report: { cpuPercent: 20, network: [{ name: 'eth0', rxBytes: '4000', txBytes: '1000' }] },
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

describe('filterVms', () => {
  it('should match id, name, hostname, project, node, OS or address', () => {
    const vm = (id: string, over: Partial<VmSummary> = {}): VmSummary => ({
      id,
      name: '',
      hostname: '',
      projectId: 'default',
      nodeId: 'node-1',
      nodeStale: false,
      agentState: 'ready',
      agentVersion: '',
      os: 'Debian',
      ips: [],
      cpuPercent: null,
      memoryUsedBytes: null,
      memoryTotalBytes: null,
      connectedSince: null,
      lastSeen: null,
      telemetryAt: null,
      ...over,
    });
    const vms = [
      vm('a', { ips: ['10.0.0.5'] }),
      vm('b', { projectId: 'payments' }),
      vm('c', { name: 'web-dup' }),
    ];
    expect(filterVms(vms, '10.0.0').map((v) => v.id)).toEqual(['a']);
    expect(filterVms(vms, 'DUP').map((v) => v.id)).toEqual(['c']);
    expect(filterVms(vms, 'PAY').map((v) => v.id)).toEqual(['b']);
    expect(filterVms(vms, ' ').length).toBe(3);
  });
});
