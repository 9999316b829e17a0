import { useEffect, useState } from 'react';
import type { VmView } from '@lq/api';
import { can, execLimits } from '../auth/permissions';
import { useMe, useSession } from '../auth/session-context';
import { AgentBadge } from '../components/agent-badge';
import { ErrorNotice } from '../components/error-notice';
import { ExecuteResultView } from '../components/execute-result';
import { Link } from '../components/link';
import { RunScriptModal, type LastRun } from '../components/run-script-modal';
import { formatTime } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { vmPath, type VmTab } from '../lib/router';
import { AgentTab } from './vm-agent-tab';
import { FilesTab } from './vm-files-tab';
import { HistoryTab } from './vm-history-tab';
import { NetworkTab } from './vm-network-tab';
import { OverviewTab } from './vm-overview-tab';

/** How often the page re-reads the VM (agent state, facts) while open. */
const REFRESH_MS = 5000;

export function VmDetailPage({ id, tab }: { id: string; tab: VmTab }) {
  const { api } = useSession();
  const me = useMe();
  const vm = useLoad(
    (signal) => api.json<VmView>(`/api/vms/${encodeURIComponent(id)}`, { signal }),
    [api, id],
  );
  const [runOpen, setRunOpen] = useState(false);
  const [lastRun, setLastRun] = useState<LastRun>();
  const { reload } = vm;

  useEffect(() => {
    const t = setInterval(reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload]);

  if (!vm.data) {
    return (
      <section>
        <p>
          <Link to="/">← All VMs</Link>
        </p>
        {vm.error !== undefined ? (
          <ErrorNotice error={vm.error} onRetry={reload} />
        ) : (
          <p className="muted" role="status">
            <span className="spinner" aria-hidden="true" /> Loading {id}…
          </p>
        )}
      </section>
    );
  }
  const v = vm.data;
  const project = v.project_id || 'default';
  const tabs: Array<{ tab: VmTab; label: string; shown: boolean }> = [
    { tab: 'overview', label: 'Overview', shown: true },
    { tab: 'agent', label: 'Agent', shown: true },
    {
      tab: 'files',
      label: 'Files',
      shown: can(me, 'guest.file.read', project) || can(me, 'guest.file.write', project),
    },
    { tab: 'network', label: 'Network', shown: true },
    { tab: 'history', label: 'History', shown: can(me, 'audit.read', project) },
  ];
  const current = tabs.find((t) => t.tab === tab && t.shown) ?? tabs[0]!;

  return (
    <section aria-labelledby="vm-title">
      <p>
        <Link to="/">← All VMs</Link>
      </p>
      <header className="page-head">
        <div>
          <h1 id="vm-title">
            {v.id} <AgentBadge state={v.agent_state} />
          </h1>
          <p className="muted">
            {v.hostname ? `${v.hostname} · ` : ''}project {project} · node {v.node_id || '—'} · last
            seen {formatTime(v.last_seen)}
          </p>
        </div>
        <div className="actions">
          {can(me, 'guest.exec', project) && (
            <button type="button" className="primary" onClick={() => setRunOpen(true)}>
              Run Script
            </button>
          )}
        </div>
      </header>
      {vm.error !== undefined && <ErrorNotice error={vm.error} />}
      {lastRun && (
        <details className="card last-run" open>
          <summary>
            Last run: <code>{lastRun.request.command.split('\n')[0]}</code>{' '}
            <span className="muted small">at {formatTime(lastRun.at)}</span>
          </summary>
          <ExecuteResultView output={lastRun.output} />
          <p className="actions">
            <button type="button" onClick={() => setRunOpen(true)}>
              Run again…
            </button>
            <button type="button" onClick={() => setLastRun(undefined)}>
              Dismiss
            </button>
          </p>
        </details>
      )}
      <nav className="tabs" role="tablist" aria-label="VM sections">
        {tabs
          .filter((t) => t.shown)
          .map((t) => (
            <Link
              key={t.tab}
              to={vmPath(v.id, t.tab)}
              role="tab"
              aria-selected={t.tab === current.tab}
              className={t.tab === current.tab ? 'tab active' : 'tab'}
            >
              {t.label}
            </Link>
          ))}
      </nav>
      <div className="tab-panel" role="tabpanel">
        {current.tab === 'overview' && <OverviewTab vm={v} />}
        {current.tab === 'agent' && <AgentTab vm={v} onChanged={reload} />}
        {current.tab === 'files' && <FilesTab vm={v} />}
        {current.tab === 'network' && <NetworkTab vm={v} />}
        {current.tab === 'history' && <HistoryTab vm={v} lastRunAt={lastRun?.at} />}
      </div>
      {runOpen && (
        <RunScriptModal
          api={api}
          vmId={v.id}
          limits={execLimits(me, project)}
          initial={lastRun?.request}
          onClose={() => setRunOpen(false)}
          onResult={setLastRun}
        />
      )}
    </section>
  );
}
