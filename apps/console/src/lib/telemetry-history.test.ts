import { describe, expect, it } from 'vitest';
import type { TelemetryPointView, TelemetrySeriesView } from '@lq/api';
import { chartColumns, formatRate, isChartWindow, seriesPath } from './telemetry-history';

function point(t: string, cpu: number): TelemetryPointView {
  return {
    t,
    samples: 6,
    cpu_percent: cpu,
    cpu_max_percent: cpu + 5,
    load1: 0,
    memory_used_bytes: 1,
    memory_total_bytes: 2,
    memory_percent: 50,
    disk_used_bytes: 1,
    disk_total_bytes: 4,
    disk_max_percent: 25,
    net_rx_bytes_per_second: 100,
    net_tx_bytes_per_second: null,
  };
}

describe('telemetry history helpers', () => {
  it('should put one empty step where the series has a gap', () => {
    const s: TelemetrySeriesView = {
      vm_id: 'vm-1',
      from: '2026-12-05T10:00:00.000Z',
      to: '2026-12-05T11:00:00.000Z',
      resolution: 'fine',
      step_seconds: 60,
      points: [
        point('2026-12-05T10:00:00.000Z', 10),
        point('2026-12-05T10:01:00.000Z', 20),
        point('2026-12-05T10:05:00.000Z', 30),
      ],
    };
    const c = chartColumns(s);
    const t0 = Date.parse('2026-12-05T10:00:00Z') / 1000;
    expect(c.t).toEqual([t0, t0 + 60, t0 + 120, t0 + 300]);
    expect(c.cpu).toEqual([10, 20, null, 30]);
    expect(c.cpuMax).toEqual([15, 25, null, 35]);
    expect(c.tx).toEqual([null, null, null, null]);
  });

  it('should ask for the window ending now', () => {
    const now = Date.parse('2026-12-05T12:00:00Z');
    expect(seriesPath('vm 1', '6h', now)).toBe(
      '/api/vms/vm%201/telemetry?from=2026-12-05T06%3A00%3A00.000Z&to=2026-12-05T12%3A00%3A00.000Z',
    );
    expect([isChartWindow('24h'), isChartWindow('2h')]).toEqual([true, false]);
  });

  it('should write rates in words', () => {
    expect([formatRate(512), formatRate(1_500_000), formatRate(null)]).toEqual([
      '512 B/s',
      '1.5 MB/s',
      '—',
    ]);
  });
});
