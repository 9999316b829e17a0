import { useEffect, useState } from 'react';
import type { FleetSummaryView, FleetVmView, VmListView } from '@lq/api';
import { useSession } from '../auth/session-context';
import { AgentBadge } from '../components/agent-badge';
import { ErrorNotice } from '../components/error-notice';
import { Link } from '../components/link';
import { TelemetryCharts, WindowSelect } from '../components/telemetry-charts';
import { formatBytes, formatPercent, formatTime } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { vmPath } from '../lib/router';
import { formatRate, type ChartWindow } from '../lib/telemetry-history';

/** How often the aggregates are read again while the page is open. */
const REFRESH_MS = 30_000;
const TOP = 10;

function TopTable({
  title,
  vms,
  value,
}: {
  title: string;
  vms: FleetVmView[];
  value: (v: FleetVmView) => string;
}) {
  return (
    <div className="card" aria-label={title} role="region">
      <h3>{title}</h3>
      {vms.length === 0 ? (
        <p className="muted">No VM has reported lately.</p>
      ) : (
        <table className="table compact">
          <tbody>
            {vms.map((v) => (
              <tr key={v.id} data-vm={v.id}>
                <td>
                  <Link to={vmPath(v.id)}>{v.name || v.id}</Link>
                  <span className="muted small"> · {v.project_id || 'default'}</span>
                </td>
                <td className="num">{value(v)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function DashboardPage() {
  const { api } = useSession();
  const [threshold, setThreshold] = useState('90');
  const [applied, setApplied] = useState(90);
  const [vmId, setVmId] = useState('');
  const [window, setWindow] = useState<ChartWindow>('1h');
  const summary = useLoad(
    (signal) =>
      api.json<FleetSummaryView>(`/api/fleet/summary?top=${TOP}&disk_percent=${applied}`, {
        signal,
      }),
    [api, applied],
  );
  const vms = useLoad((signal) => api.json<VmListView>('/api/vms', { signal }), [api]);
  const { reload } = summary;
  useEffect(() => {
    const t = setInterval(reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload]);
  const s = summary.data;
  const choices = vms.data?.vms ?? [];
  const chosen = vmId || s?.top.cpu[0]?.id || choices[0]?.id || '';
  const thresholdValue = Number(threshold);
  const thresholdBad =
    threshold.trim() === '' ||
    !Number.isFinite(thresholdValue) ||
    thresholdValue < 0 ||
    thresholdValue > 100;

  return (
    <section aria-labelledby="dashboard-title">
      <header className="page-head">
        <h1 id="dashboard-title">Fleet dashboard</h1>
        {s && (
          <span className="muted small">
            {s.vms} VMs, {s.reporting} reporting · {formatTime(s.generated_at)}
          </span>
        )}
      </header>
      {summary.error !== undefined && <ErrorNotice error={summary.error} onRetry={reload} />}
      {!s && summary.error === undefined && (
        <p className="muted" role="status">
          <span className="spinner" aria-hidden="true" /> Loading the fleet…
        </p>
      )}
      {s && (
        <div className="grid">
          <div className="card" role="region" aria-label="Agents by state">
            <h3>Agents by state</h3>
            <table className="table compact">
              <tbody>
                {s.by_agent_state.map((c) => (
                  <tr key={c.key} data-state={c.key}>
                    <td>
                      <AgentBadge state={c.key} />
                    </td>
                    <td className="num">{c.count}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="card" role="region" aria-label="Agent versions">
            <h3>Agent versions</h3>
            <table className="table compact">
              <tbody>
                {s.by_agent_version.map((c) => (
                  <tr key={c.key} data-version={c.key}>
                    <td>{c.key || 'not reported'}</td>
                    <td className="num">{c.count}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <TopTable title="Top CPU" vms={s.top.cpu} value={(v) => formatPercent(v.cpu_percent)} />
          <TopTable
            title="Top memory"
            vms={s.top.memory}
            value={(v) =>
              `${formatPercent(v.memory_percent)} · ${formatBytes(v.memory_used_bytes)}`
            }
          />
          <TopTable
            title="Top disk use"
            vms={s.top.disk}
            value={(v) => formatPercent(v.disk_max_percent)}
          />
          <TopTable
            title="Top network"
            vms={s.top.network}
            value={(v) => formatRate(v.net_bytes_per_second)}
          />
          <div className="card span-2" role="region" aria-label="Full filesystems">
            <div className="card-head">
              <h3>
                Filesystems at or above {s.disk_threshold_percent} % ({s.full_disk_vms} VMs)
              </h3>
              <form
                className="inline-field"
                onSubmit={(e) => {
                  e.preventDefault();
                  if (!thresholdBad) {
                    setApplied(thresholdValue);
                  }
                }}
              >
                <label>
                  Threshold (%){' '}
                  <input
                    type="number"
                    min={0}
                    max={100}
                    value={threshold}
                    aria-invalid={thresholdBad}
                    onChange={(e) => setThreshold(e.target.value)}
                  />
                </label>{' '}
                <button type="submit" disabled={thresholdBad}>
                  Apply
                </button>
              </form>
            </div>
            {thresholdBad && <p className="field-error">The threshold is a percent, 0 to 100.</p>}
            {s.full_disks.length === 0 ? (
              <p className="muted">No filesystem is that full.</p>
            ) : (
              <table className="table compact">
                <thead>
                  <tr>
                    <th>VM</th>
                    <th>Mount</th>
                    <th>Used</th>
                    <th>Size</th>
                  </tr>
                </thead>
                <tbody>
                  {s.full_disks.map((d) => (
                    <tr key={`${d.vm_id}${d.mount_point}`} data-vm={d.vm_id}>
                      <td>
                        <Link to={vmPath(d.vm_id)}>{d.vm_name || d.vm_id}</Link>
                      </td>
                      <td>{d.mount_point}</td>
                      <td>{formatPercent(d.used_percent)}</td>
                      <td>{formatBytes(d.total_bytes)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        </div>
      )}
      <div className="card chart-card" role="region" aria-label="VM charts">
        <div className="card-head">
          <h3>VM history</h3>
          <div className="inline-field">
            <label>
              VM{' '}
              <select value={chosen} onChange={(e) => setVmId(e.target.value)}>
                {choices.map((v) => (
                  <option key={v.id} value={v.id}>
                    {v.name || v.id}
                  </option>
                ))}
              </select>
            </label>{' '}
            <WindowSelect value={window} onChange={setWindow} />
          </div>
        </div>
        {vms.error !== undefined && <ErrorNotice error={vms.error} onRetry={vms.reload} />}
        {chosen ? (
          <TelemetryCharts vmId={chosen} window={window} />
        ) : (
          vms.data && <p className="muted">No VMs you may see have reported yet.</p>
        )}
      </div>
    </section>
  );
}
