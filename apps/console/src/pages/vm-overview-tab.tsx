import { useState } from 'react';
import type { NetworkInterfaceView, VmView } from '@lq/api';
import { TelemetryCharts, WindowSelect } from '../components/telemetry-charts';
import { UsageBar } from '../components/usage-bar';
import { formatBytes, formatDuration, formatPercent, formatTime, share } from '../lib/format';
import type { ChartWindow } from '../lib/telemetry-history';

export function InterfacesTable({ interfaces }: { interfaces: NetworkInterfaceView[] }) {
  if (interfaces.length === 0) {
    return <p className="muted">No interfaces reported.</p>;
  }
  return (
    <table className="table compact">
      <thead>
        <tr>
          <th>Interface</th>
          <th>MAC</th>
          <th>Addresses</th>
        </tr>
      </thead>
      <tbody>
        {interfaces.map((i) => (
          <tr key={i.name}>
            <td data-label="Interface">{i.name}</td>
            <td data-label="MAC">{i.mac || '—'}</td>
            <td data-label="Addresses" className="ips">
              {[...(i.ipv4 ?? []), ...(i.ipv6 ?? [])].join(', ') || '—'}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function OverviewTab({ vm }: { vm: VmView }) {
  const [window, setWindow] = useState<ChartWindow>('1h');
  const t = vm.telemetry;
  const memUsed = t?.memory?.used_bytes;
  const memTotal = t?.memory?.total_bytes;
  return (
    <div className="grid">
      <div className="card">
        <h3>Machine</h3>
        <dl className="facts">
          <dt>VM id</dt>
          <dd>{vm.id}</dd>
          <dt>Hostname</dt>
          <dd>{vm.hostname || '—'}</dd>
          <dt>Project</dt>
          <dd>{vm.project_id || 'default'}</dd>
          <dt>Node</dt>
          <dd>{vm.node_id || '—'}</dd>
          <dt>Operating system</dt>
          <dd>
            {vm.os?.pretty_name || [vm.os?.name, vm.os?.version].filter(Boolean).join(' ') || '—'}
          </dd>
          <dt>Kernel</dt>
          <dd>{[vm.os?.kernel_release, vm.os?.arch].filter(Boolean).join(' · ') || '—'}</dd>
          <dt>Uptime</dt>
          <dd>{t?.uptime_seconds !== undefined ? formatDuration(t.uptime_seconds * 1000) : '—'}</dd>
          <dt>Last seen</dt>
          <dd>{formatTime(vm.last_seen)}</dd>
        </dl>
      </div>
      <div className="card">
        <h3>Resources</h3>
        {t ? (
          <dl className="facts">
            <dt>CPU ({t.cpu_count ?? '?'} vCPU)</dt>
            <dd>
              <UsageBar percent={t.cpu_percent} label="CPU" />
            </dd>
            <dt>Load</dt>
            <dd>{[t.load1, t.load5, t.load15].map((l) => (l ?? 0).toFixed(2)).join(' / ')}</dd>
            <dt>Memory</dt>
            <dd>
              <UsageBar percent={share(memUsed, memTotal)} label="Memory" />{' '}
              <span className="muted small">
                {formatBytes(memUsed)} of {formatBytes(memTotal)}
              </span>
            </dd>
            <dt>Processes</dt>
            <dd>{t.process_count ?? '—'}</dd>
            <dt>Telemetry from</dt>
            <dd>{formatTime(vm.telemetry_at)}</dd>
          </dl>
        ) : (
          <p className="muted">No telemetry yet.</p>
        )}
      </div>
      {t?.disks && t.disks.length > 0 && (
        <div className="card span-2">
          <h3>Filesystems</h3>
          <table className="table compact">
            <thead>
              <tr>
                <th>Mount</th>
                <th>Device</th>
                <th>Type</th>
                <th>Used</th>
                <th>Size</th>
              </tr>
            </thead>
            <tbody>
              {t.disks.map((d) => {
                const p = share(d.used_bytes, d.total_bytes);
                return (
                  <tr key={`${d.mount_point}${d.device}`}>
                    <td data-label="Mount">{d.mount_point}</td>
                    <td data-label="Device">{d.device}</td>
                    <td data-label="Type">{d.fs_type}</td>
                    <td data-label="Used">
                      <UsageBar
                        percent={p}
                        label={`Disk ${d.mount_point}`}
                        detail={formatPercent(p)}
                      />
                    </td>
                    <td data-label="Size">{formatBytes(d.total_bytes)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <div className="card span-2" role="region" aria-label="History">
        <div className="card-head">
          <h3>History</h3>
          <WindowSelect value={window} onChange={setWindow} />
        </div>
        <TelemetryCharts vmId={vm.id} window={window} />
      </div>
      <div className="card span-2">
        <h3>Network</h3>
        <InterfacesTable
          interfaces={t?.interfaces?.length ? t.interfaces : (vm.interfaces ?? [])}
        />
      </div>
    </div>
  );
}
