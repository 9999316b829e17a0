import { useMemo, useState } from 'react';
import { ApiError } from '../api/errors';
import type { VmListErrorView, VmListSnapshotView, VmSummaryView } from '@lq/api';
import { useSession } from '../auth/session-context';
import { AgentBadge } from '../components/agent-badge';
import { ErrorNotice } from '../components/error-notice';
import { Link } from '../components/link';
import { StreamStatusLine } from '../components/stream-status';
import { UsageBar } from '../components/usage-bar';
import { formatBytes, share } from '../lib/format';
import { useEventStream } from '../lib/hooks';
import { vmPath } from '../lib/router';

/** VMs whose id, name, hostname, project, node, OS or address contains the text. */
export function filterVms(vms: readonly VmSummaryView[], text: string): VmSummaryView[] {
  const q = text.trim().toLowerCase();
  if (!q) {
    return [...vms];
  }
  return vms.filter((vm) =>
    [vm.id, vm.name, vm.hostname, vm.project_id, vm.node_id, vm.os, ...vm.ips].some((f) =>
      f.toLowerCase().includes(q),
    ),
  );
}

export function VmListPage() {
  const { api } = useSession();
  const [vms, setVms] = useState<VmSummaryView[]>();
  const [feedError, setFeedError] = useState<ApiError>();
  const [filter, setFilter] = useState('');
  const status = useEventStream(api, '/api/vms/stream', (event, data) => {
    if (event === 'vms') {
      setVms((data as VmListSnapshotView).vms);
      setFeedError(undefined);
    } else if (event === 'error') {
      const d = data as VmListErrorView;
      setFeedError(new ApiError(503, { code: d.code, message: d.message }));
    }
  });
  const shown = useMemo(() => filterVms(vms ?? [], filter), [vms, filter]);

  return (
    <section aria-labelledby="vms-title">
      <header className="page-head">
        <h1 id="vms-title">Virtual machines</h1>
        <StreamStatusLine status={status} what="The VM list" />
      </header>
      {feedError && <ErrorNotice error={feedError} />}
      <div className="toolbar">
        <input
          type="search"
          placeholder="Filter by name, project, node, OS or address"
          aria-label="Filter VMs"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
        {vms && (
          <span className="muted small">
            {shown.length} of {vms.length} VMs
          </span>
        )}
      </div>
      {vms === undefined && status.state !== 'stopped' && (
        <p className="muted" role="status">
          <span className="spinner" aria-hidden="true" /> Loading the inventory…
        </p>
      )}
      {vms !== undefined && vms.length === 0 && (
        <p className="notice">No VMs you may see have reported yet.</p>
      )}
      {shown.length > 0 && (
        <table className="table vm-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Project</th>
              <th>Node</th>
              <th>Agent</th>
              <th>IP addresses</th>
              <th>OS</th>
              <th>CPU</th>
              <th>Memory</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((vm) => (
              <tr key={vm.id} data-vm={vm.id}>
                <td data-label="Name">
                  <Link to={vmPath(vm.id)} className="vm-name">
                    {vm.name || vm.id}
                  </Link>
                  {vm.name && <div className="muted small">{vm.id}</div>}
                  {vm.hostname && vm.hostname !== vm.id && vm.hostname !== vm.name && (
                    <div className="muted small">{vm.hostname}</div>
                  )}
                </td>
                <td data-label="Project">{vm.project_id}</td>
                <td data-label="Node">
                  {vm.node_id || '—'}
                  {vm.node_stale && (
                    <span
                      className="badge badge-not-connected"
                      title="no heartbeat from this node lately"
                    >
                      unreachable
                    </span>
                  )}
                </td>
                <td data-label="Agent">
                  <AgentBadge state={vm.agent_state} />
                  {vm.agent_version && (
                    <div className="muted small agent-version">
                      {vm.agent_version}
                      {vm.agent_outdated && (
                        <span
                          className="badge badge-outdated"
                          title="older than the newest agent release the control plane offers"
                        >
                          outdated
                        </span>
                      )}
                    </div>
                  )}
                </td>
                <td data-label="IP addresses" className="ips">
                  {vm.ips.length ? vm.ips.join(', ') : <span className="muted">—</span>}
                </td>
                <td data-label="OS">{vm.os || <span className="muted">—</span>}</td>
                <td data-label="CPU">
                  <UsageBar percent={vm.cpu_percent} label={`CPU of ${vm.id}`} />
                </td>
                <td data-label="Memory">
                  <UsageBar
                    percent={share(vm.memory_used_bytes, vm.memory_total_bytes)}
                    label={`Memory of ${vm.id}`}
                    detail={`${formatBytes(vm.memory_used_bytes)} of ${formatBytes(vm.memory_total_bytes)}`}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
