import { useMemo } from 'react';
import type { TelemetrySeriesView } from '@lq/api';
import { useSession } from '../auth/session-context';
import { formatPercent } from '../lib/format';
import { useLoad } from '../lib/hooks';
import {
  CHART_WINDOWS,
  chartColumns,
  formatRate,
  seriesPath,
  type ChartWindow,
} from '../lib/telemetry-history';
import { ErrorNotice } from './error-notice';
import { TimeChart } from './time-chart';

const pct = (v: number) => formatPercent(v);

/** The window picker the charts share. */
export function WindowSelect({
  value,
  onChange,
}: {
  value: ChartWindow;
  onChange: (w: ChartWindow) => void;
}) {
  return (
    <label className="inline-field">
      Window{' '}
      <select value={value} onChange={(e) => onChange(e.target.value as ChartWindow)}>
        {CHART_WINDOWS.map((w) => (
          <option key={w.key} value={w.key}>
            {w.label}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A VM's CPU, memory, disk and network history over a window (GET /api/vms/:id/telemetry). */
export function TelemetryCharts({ vmId, window }: { vmId: string; window: ChartWindow }) {
  const { api } = useSession();
  const series = useLoad(
    (signal) => api.json<TelemetrySeriesView>(seriesPath(vmId, window), { signal }),
    [api, vmId, window],
  );
  const s = series.data;
  const cols = useMemo(() => (s ? chartColumns(s) : undefined), [s]);
  const range = useMemo<[number, number]>(
    () => (s ? [Date.parse(s.from) / 1000, Date.parse(s.to) / 1000] : [0, 1]),
    [s],
  );
  const lines = useMemo(
    () =>
      cols && {
        cpu: [
          { label: 'average', values: cols.cpu, color: '#2454c5' },
          { label: 'highest', values: cols.cpuMax, color: '#9db2e8' },
        ],
        memory: [{ label: 'used', values: cols.memory, color: '#137a3a' }],
        disk: [{ label: 'fullest filesystem', values: cols.disk, color: '#8a5a00' }],
        net: [
          { label: 'received', values: cols.rx, color: '#6b3fa0' },
          { label: 'sent', values: cols.tx, color: '#b42318' },
        ],
      },
    [cols],
  );
  if (series.error !== undefined && !s) {
    return <ErrorNotice error={series.error} onRetry={series.reload} />;
  }
  if (!s || !cols || !lines) {
    return (
      <p className="muted" role="status">
        <span className="spinner" aria-hidden="true" /> Loading the history…
      </p>
    );
  }
  return (
    <div className="history-charts" data-vm={vmId}>
      <p className="muted small">
        {s.points.length === 0
          ? 'No telemetry recorded in this window yet.'
          : `${s.points.length} ${s.points.length === 1 ? 'point' : 'points'} of ${s.step_seconds >= 60 ? `${s.step_seconds / 60} min` : `${s.step_seconds} s`} (${s.resolution === 'fine' ? 'short-term' : 'long-term'} history)`}
      </p>
      <div className="chart-grid">
        <TimeChart title="CPU" t={cols.t} lines={lines.cpu} range={range} percent format={pct} />
        <TimeChart
          title="Memory"
          t={cols.t}
          lines={lines.memory}
          range={range}
          percent
          format={pct}
        />
        <TimeChart title="Disk" t={cols.t} lines={lines.disk} range={range} percent format={pct} />
        <TimeChart title="Network" t={cols.t} lines={lines.net} range={range} format={formatRate} />
      </div>
    </div>
  );
}
