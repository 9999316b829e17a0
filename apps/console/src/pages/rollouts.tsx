import { useEffect, useState } from 'react';
import type {
  AgentReleaseListView,
  AgentRolloutBody,
  AgentRolloutListView,
  AgentRolloutView,
} from '@lq/api';
import { useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { Link } from '../components/link';
import { formatTime } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { navigate, vmPath } from '../lib/router';

const POLL_MS = 1000;

/** The body of POST /api/agent/rollouts from the form's fields. */
export function rolloutBodyOf(f: {
  version: string;
  vms: string;
  labels: string;
  canary: string;
  maxConcurrency: string;
  maxErrors: string;
}): AgentRolloutBody {
  const ids = f.vms
    .split(/[\s,]+/)
    .map((v) => v.trim())
    .filter(Boolean);
  const amount = (v: string) => (/^\d+$/.test(v.trim()) ? Number(v) : v.trim());
  return {
    version: f.version,
    target: ids.length > 0 ? { vm_ids: ids } : { labels: f.labels.trim() },
    canary: Number(f.canary),
    max_concurrency: amount(f.maxConcurrency),
    max_errors: amount(f.maxErrors),
  };
}

/** Agent rollouts: start one (release, target, canary, pace, error budget) and follow it. */
export function RolloutsPage({ id }: { id?: string }) {
  const { api } = useSession();
  const releases = useLoad(
    (signal) => api.json<AgentReleaseListView>('/api/agent/releases', { signal }),
    [api],
  );
  const list = useLoad(
    (signal) => api.json<AgentRolloutListView>('/api/agent/rollouts', { signal }),
    [api, id],
  );
  const [form, setForm] = useState({
    version: '',
    vms: '',
    labels: '',
    canary: '1',
    maxConcurrency: '5',
    maxErrors: '0',
  });
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const offered = (releases.data?.releases ?? []).filter((r) => r.updatable);
  const version = form.version || releases.data?.latest || '';

  async function start(e: React.FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await api.post<AgentRolloutView>(
        '/api/agent/rollouts',
        rolloutBodyOf({ ...form, version }),
      );
      navigate(`/rollouts/${r.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  const set =
    (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
      setForm((f) => ({ ...f, [k]: e.target.value }));

  return (
    <section aria-labelledby="rollouts-title">
      <header className="page-head">
        <h1 id="rollouts-title">Agent rollouts</h1>
      </header>
      {id ? (
        <RolloutProgress id={id} onEnded={list.reload} />
      ) : (
        <form className="card" onSubmit={(e) => void start(e)} aria-label="New rollout">
          <h3>New rollout</h3>
          {releases.error !== undefined && <ErrorNotice error={releases.error} />}
          <div className="form-grid">
            <label>
              Release
              <select value={version} onChange={set('version')} aria-label="Release">
                {offered.map((r) => (
                  <option key={r.version} value={r.version}>
                    {r.version}
                    {r.version === releases.data?.latest ? ' (latest)' : ''}
                  </option>
                ))}
              </select>
            </label>
            <label>
              VMs (ids, comma-separated)
              <input value={form.vms} onChange={set('vms')} placeholder="vm-1, vm-2" />
            </label>
            <label>
              or labels
              <input value={form.labels} onChange={set('labels')} placeholder="env=prod,role=db" />
            </label>
            <label>
              Canary VMs
              <input value={form.canary} onChange={set('canary')} inputMode="numeric" />
            </label>
            <label>
              Max concurrency
              <input value={form.maxConcurrency} onChange={set('maxConcurrency')} />
            </label>
            <label>
              Max errors
              <input value={form.maxErrors} onChange={set('maxErrors')} />
            </label>
          </div>
          <div className="actions">
            <button type="submit" disabled={busy || !version}>
              {busy ? 'Starting…' : 'Start rollout'}
            </button>
          </div>
          {error !== undefined && <ErrorNotice error={error} />}
        </form>
      )}
      <div className="card">
        <h3>Recent rollouts</h3>
        {list.error !== undefined && <ErrorNotice error={list.error} />}
        {(list.data?.rollouts ?? []).length === 0 ? (
          <p className="muted">None yet.</p>
        ) : (
          <table className="table">
            <thead>
              <tr>
                <th>Started</th>
                <th>Release</th>
                <th>By</th>
                <th>Status</th>
                <th>Errors</th>
              </tr>
            </thead>
            <tbody>
              {list.data!.rollouts.map((r) => (
                <tr key={r.id}>
                  <td>
                    <Link to={`/rollouts/${r.id}`}>{formatTime(r.created_at)}</Link>
                  </td>
                  <td>{r.version}</td>
                  <td>{r.actor}</td>
                  <td>{r.status}</td>
                  <td>{r.errors}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}

/** One rollout, polled while it runs: counts per step and every VM's step. */
function RolloutProgress({ id, onEnded }: { id: string; onEnded: () => void }) {
  const { api } = useSession();
  const [view, setView] = useState<AgentRolloutView>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const r = await api.json<AgentRolloutView>(`/api/agent/rollouts/${encodeURIComponent(id)}`);
        if (stopped) {
          return;
        }
        setView(r);
        setError(undefined);
        if (r.status !== 'running') {
          onEnded();
          return;
        }
      } catch (err) {
        setError(err);
      }
      timer = setTimeout(() => void poll(), POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [api, id, onEnded]);

  if (!view) {
    return error !== undefined ? <ErrorNotice error={error} /> : <p className="muted">Loading…</p>;
  }
  const done = view.vms.filter(
    (v) => !['queued', 'sent', 'verified', 'restarted'].includes(v.state),
  ).length;
  return (
    <div className="card" aria-label="Rollout progress">
      <h3>
        Rollout of {view.version}: <span data-testid="rollout-status">{view.status}</span>
      </h3>
      <p className="muted small">
        {view.canary} canary first, then {view.max_concurrency} at once; stops after{' '}
        {view.max_errors + 1} errors · by {view.actor} · {formatTime(view.created_at)}
      </p>
      <progress max={view.vms.length} value={done} aria-label="VMs done" />
      <p data-testid="rollout-summary">
        {Object.entries(view.summary)
          .map(([state, n]) => `${n} ${state}`)
          .join(' · ')}{' '}
        · {view.errors} errors
      </p>
      {error !== undefined && <ErrorNotice error={error} />}
      <table className="table">
        <thead>
          <tr>
            <th>VM</th>
            <th>Step</th>
            <th>From</th>
            <th>To</th>
            <th>Why</th>
          </tr>
        </thead>
        <tbody>
          {view.vms.map((v) => (
            <tr key={v.vm_id} data-vm={v.vm_id}>
              <td>
                <Link to={vmPath(v.vm_id, 'agent')}>{v.vm_id}</Link>
                {v.canary && <span className="badge badge-connecting">canary</span>}
              </td>
              <td data-label="Step">{v.state}</td>
              <td>{v.from_version ?? '—'}</td>
              <td>{v.to_version ?? '—'}</td>
              <td className="muted small">{v.error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Link to="/rollouts">New rollout</Link>
    </div>
  );
}
