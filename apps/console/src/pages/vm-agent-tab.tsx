import { useState } from 'react';
import type {
  AgentSessionView,
  PingView,
  ShutdownView,
  SyncTimeView,
  TelemetryEventView,
  VmView,
} from '@lq/api';
import { can } from '../auth/permissions';
import { useMe, useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { ConfirmDialog } from '../components/modal';
import { PasswordDialog } from '../components/password-dialog';
import { QuiescePanel } from '../components/quiesce-panel';
import { Sparkline } from '../components/sparkline';
import { StreamStatusLine } from '../components/stream-status';
import { formatBytes, formatPercent, formatTime } from '../lib/format';
import { useEventStream, useLoad } from '../lib/hooks';
import { appendSample, seriesOf, type Sample } from '../lib/telemetry';
import { InterfacesTable } from './vm-overview-tab';

type PowerMode = 'poweroff' | 'reboot';

function last(xs: number[]): number | undefined {
  return xs.length ? xs[xs.length - 1] : undefined;
}

/** "+12 ms" / "−3.4 s" for a clock offset. */
export function formatOffset(ms: number | null): string {
  if (ms === null) {
    return 'unknown';
  }
  const sign = ms < 0 ? '−' : '+';
  const abs = Math.abs(ms);
  return abs >= 1000 ? `${sign}${(abs / 1000).toFixed(1)} s` : `${sign}${Math.round(abs)} ms`;
}

export function AgentTab({ vm, onChanged }: { vm: VmView; onChanged: () => void }) {
  const { api } = useSession();
  const me = useMe();
  const project = vm.project_id || 'default';
  const [samples, setSamples] = useState<Sample[]>([]);
  const [confirm, setConfirm] = useState<PowerMode>();
  const [passwordOpen, setPasswordOpen] = useState(false);
  const [force, setForce] = useState(false);
  const vmLabel = vm.name || vm.id;
  const [busy, setBusy] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const [error, setError] = useState<unknown>();
  const session = useLoad(
    (signal) =>
      api.json<AgentSessionView>(`/api/vms/${encodeURIComponent(vm.id)}/agent-session`, { signal }),
    [api, vm.id, vm.agent_state],
  );
  const status = useEventStream(
    api,
    `/api/vms/${encodeURIComponent(vm.id)}/telemetry/stream`,
    (event, data) => {
      const t = data as TelemetryEventView;
      if (event === 'telemetry' && t.report) {
        const at = t.timestamp ? new Date(t.timestamp).getTime() : Date.now();
        setSamples((s) => appendSample(s, { at, report: t.report! }));
      }
    },
  );
  const series = seriesOf(samples);
  const latest = samples.length ? samples[samples.length - 1]!.report : vm.telemetry;
  const canPower = can(me, 'guest.power', project);
  const canTime = can(me, 'guest.time', project);
  const canPassword = can(me, 'guest.password', project);

  async function act(label: string, work: () => Promise<string>) {
    setBusy(label);
    setError(undefined);
    setNotice(undefined);
    try {
      setNotice(await work());
      onChanged();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  }

  const ping = () =>
    act('ping', async () => {
      const r = await api.post<PingView>(`/api/vms/${encodeURIComponent(vm.id)}/ping`, {});
      return `The agent answered in ${r.latency_ms} ms (version ${r.agent_version}).`;
    });

  const power = (mode: PowerMode) =>
    act(mode, async () => {
      setConfirm(undefined);
      const r = await api.post<ShutdownView>(`/api/vms/${encodeURIComponent(vm.id)}/shutdown`, {
        mode,
      });
      return `${mode === 'reboot' ? 'Reboot' : 'Shutdown'} accepted by the agent${r.scheduled_at ? ` for ${formatTime(r.scheduled_at)}` : ''}.`;
    });

  const syncTime = () =>
    act('time', async () => {
      const r = await api.post<SyncTimeView>(`/api/vms/${encodeURIComponent(vm.id)}/sync-time`, {
        force,
      });
      return `Clock synced by ${r.method}: offset ${formatOffset(r.offset_before_ms)} before, ${formatOffset(r.offset_after_ms)} after${r.rtc_error ? ` (hardware clock not set: ${r.rtc_error})` : ''}.`;
    });

  return (
    <div className="grid">
      <div className="card">
        <h3>Guest agent</h3>
        <dl className="facts">
          <dt>Version</dt>
          <dd>{vm.agent_version || '—'}</dd>
          <dt>Connected since</dt>
          <dd>
            {vm.agent_state === 'ready'
              ? formatTime(session.data?.connected_since)
              : `not connected (${vm.agent_state || 'unknown'})`}
          </dd>
          <dt>Last seen</dt>
          <dd>{formatTime(vm.last_seen)}</dd>
          <dt>Operating system</dt>
          <dd>
            {vm.os?.pretty_name || vm.os?.name || '—'}
            {vm.os?.kernel_release && (
              <div className="muted small">{`${vm.os.kernel_release} ${vm.os.arch ?? ''}`}</div>
            )}
          </dd>
          <dt>Capabilities</dt>
          <dd>
            {vm.capabilities.length ? (
              <span className="chips">
                {vm.capabilities.map((c) => (
                  <span className="chip" key={c}>
                    {c}
                  </span>
                ))}
              </span>
            ) : (
              '—'
            )}
          </dd>
        </dl>
      </div>
      <div className="card">
        <h3>Filesystem freeze</h3>
        <QuiescePanel
          api={api}
          vmId={vm.id}
          canQuiesce={can(me, 'guest.quiesce', project)}
          onChanged={onChanged}
        />
      </div>
      <div className="card">
        <h3>Actions</h3>
        <div className="actions wrap">
          <button type="button" onClick={() => void ping()} disabled={busy !== undefined}>
            {busy === 'ping' ? 'Pinging…' : 'Ping agent'}
          </button>
          {canPower && (
            <>
              <button
                type="button"
                className="danger"
                onClick={() => setConfirm('poweroff')}
                disabled={busy !== undefined}
              >
                {busy === 'poweroff' ? 'Shutting down…' : 'Shut down'}
              </button>
              <button
                type="button"
                className="danger"
                onClick={() => setConfirm('reboot')}
                disabled={busy !== undefined}
              >
                {busy === 'reboot' ? 'Rebooting…' : 'Reboot'}
              </button>
            </>
          )}
          {canTime && (
            <>
              <button type="button" onClick={() => void syncTime()} disabled={busy !== undefined}>
                {busy === 'time' ? 'Syncing…' : 'Sync time'}
              </button>
              <label className="inline">
                <input
                  type="checkbox"
                  name="force"
                  checked={force}
                  onChange={(e) => setForce(e.target.checked)}
                />{' '}
                Force (set the clock from the control plane even if the guest has a time service)
              </label>
            </>
          )}
          {canPassword && (
            <button
              type="button"
              onClick={() => setPasswordOpen(true)}
              disabled={busy !== undefined}
            >
              Reset password
            </button>
          )}
        </div>
        {notice && (
          <p className="notice notice-ok" role="status">
            {notice}
          </p>
        )}
        {error !== undefined && <ErrorNotice error={error} />}
      </div>
      <div className="card span-2">
        <header className="card-head">
          <h3>Live telemetry</h3>
          <StreamStatusLine status={status} what="Telemetry" />
        </header>
        <div className="charts">
          <Sparkline
            label="CPU"
            values={series.cpu}
            max={100}
            current={formatPercent(last(series.cpu) ?? latest?.cpu_percent)}
          />
          <Sparkline
            label="Memory"
            values={series.memory}
            max={100}
            current={formatPercent(last(series.memory))}
          />
          <Sparkline
            label="Disk (/)"
            values={series.disk}
            max={100}
            current={formatPercent(last(series.disk))}
          />
          <Sparkline
            label="Network in"
            values={series.rx}
            current={`${formatBytes(last(series.rx))}/s`}
          />
          <Sparkline
            label="Network out"
            values={series.tx}
            current={`${formatBytes(last(series.tx))}/s`}
          />
        </div>
        <p className="muted small">
          {samples.length} report{samples.length === 1 ? '' : 's'} since this tab opened; the charts
          keep the last 60.
        </p>
      </div>
      <div className="card span-2">
        <h3>Interfaces and addresses</h3>
        <InterfacesTable
          interfaces={latest?.interfaces?.length ? latest.interfaces : (vm.interfaces ?? [])}
        />
      </div>
      {confirm && (
        <ConfirmDialog
          title={confirm === 'reboot' ? `Reboot ${vmLabel}?` : `Shut down ${vmLabel}?`}
          message={
            confirm === 'reboot'
              ? `${vmLabel} (${vm.id}) reboots through its agent. Running programs are stopped.`
              : `${vmLabel} (${vm.id}) powers off through its agent. It stays off until started again from the hypervisor.`
          }
          confirmLabel={confirm === 'reboot' ? 'Reboot' : 'Shut down'}
          onConfirm={() => void power(confirm)}
          onCancel={() => setConfirm(undefined)}
        />
      )}
      {passwordOpen && (
        <PasswordDialog
          api={api}
          vmId={vm.id}
          vmLabel={vmLabel}
          onClose={() => setPasswordOpen(false)}
          onDone={(message) => {
            setPasswordOpen(false);
            setError(undefined);
            setNotice(message);
          }}
        />
      )}
    </div>
  );
}
