import type { TelemetrySeriesView } from '@lq/api';

/** The windows the charts offer; the server picks the resolution (1-minute points up to 24 h). */
export const CHART_WINDOWS = [
  { key: '1h', label: 'Last hour', ms: 3600_000 },
  { key: '6h', label: 'Last 6 hours', ms: 6 * 3600_000 },
  { key: '24h', label: 'Last 24 hours', ms: 24 * 3600_000 },
  { key: '7d', label: 'Last 7 days', ms: 7 * 86_400_000 },
  { key: '30d', label: 'Last 30 days', ms: 30 * 86_400_000 },
] as const;
export type ChartWindow = (typeof CHART_WINDOWS)[number]['key'];

export function isChartWindow(s: string): s is ChartWindow {
  return CHART_WINDOWS.some((w) => w.key === s);
}

/** The REST path of a VM's history over a window ending now. */
export function seriesPath(vmId: string, window: ChartWindow, now = Date.now()): string {
  const ms = CHART_WINDOWS.find((w) => w.key === window)!.ms;
  const from = new Date(now - ms).toISOString();
  const to = new Date(now).toISOString();
  return `/api/vms/${encodeURIComponent(vmId)}/telemetry?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
}

/** Columns for the charts: x in seconds, a null where a step has no point (a gap, not a line). */
export interface ChartColumns {
  t: number[];
  cpu: Array<number | null>;
  cpuMax: Array<number | null>;
  memory: Array<number | null>;
  disk: Array<number | null>;
  rx: Array<number | null>;
  tx: Array<number | null>;
}

export function chartColumns(s: TelemetrySeriesView): ChartColumns {
  const out: ChartColumns = { t: [], cpu: [], cpuMax: [], memory: [], disk: [], rx: [], tx: [] };
  let last: number | undefined;
  for (const p of s.points) {
    const t = Date.parse(p.t) / 1000;
    if (last !== undefined && t - last > s.step_seconds * 1.5) {
      // One empty step marks the gap.
      out.t.push(last + s.step_seconds);
      for (const k of ['cpu', 'cpuMax', 'memory', 'disk', 'rx', 'tx'] as const) {
        out[k].push(null);
      }
    }
    out.t.push(t);
    out.cpu.push(p.cpu_percent);
    out.cpuMax.push(p.cpu_max_percent);
    out.memory.push(p.memory_percent);
    out.disk.push(p.disk_max_percent);
    out.rx.push(p.net_rx_bytes_per_second);
    out.tx.push(p.net_tx_bytes_per_second);
    last = t;
  }
  return out;
}

/** Bytes per second in words: 1.5 MB/s. */
export function formatRate(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) {
    return '—';
  }
  const units = ['B/s', 'KB/s', 'MB/s', 'GB/s'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
