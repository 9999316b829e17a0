import { useState } from 'react';
import type { FormEvent } from 'react';
import { downloadTo, type Progress } from '../api/transfer';
import type {
  AuditEventView,
  AuditEventsPage,
  AuditExecutionView,
  AuditExecutionsPage,
  VerifyReport,
} from '@lq/api';
import { canEverywhere } from '../auth/permissions';
import { useMe, useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { ExecutionsTable } from '../components/executions';
import { formatDuration, formatTime } from '../lib/format';
import { useLoad } from '../lib/hooks';
import { ProgressBar } from './vm-files-tab';

export interface AuditFilters {
  actor: string;
  vmId: string;
  operation: string;
  outcome: string;
  /** datetime-local values (the browser's time zone). */
  from: string;
  to: string;
}

export const NO_FILTERS: AuditFilters = {
  actor: '',
  vmId: '',
  operation: '',
  outcome: '',
  from: '',
  to: '',
};

/** The query string of /api/audit/{events,executions} for the filters (empty ones left out). */
export function auditQuery(f: AuditFilters, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  const put = (k: string, v: string) => v.trim() && q.set(k, v.trim());
  put('actor', f.actor);
  put('vm_id', f.vmId);
  put('operation', f.operation);
  put('outcome', f.outcome);
  for (const [k, v] of [
    ['from', f.from],
    ['to', f.to],
  ] as const) {
    if (v) {
      const d = new Date(v);
      if (!Number.isNaN(d.getTime())) {
        q.set(k, d.toISOString());
      }
    }
  }
  for (const [k, v] of Object.entries(extra)) {
    q.set(k, v);
  }
  return q.toString();
}

type View = 'executions' | 'events';
/** GET /api/audit/events or /executions: the rows under the view's name. */
type AuditPage = Partial<
  Pick<AuditEventsPage, 'events'> & Pick<AuditExecutionsPage, 'executions'>
> &
  Pick<AuditEventsPage, 'next_cursor'>;

function VerifyPanel() {
  const { api } = useSession();
  const me = useMe();
  const global = canEverywhere(me, 'audit.read');
  const report = useLoad(
    (signal) =>
      global ? api.json<VerifyReport>('/api/audit/verify', { signal }) : Promise.resolve(undefined),
    [api, global],
  );
  if (!global) {
    return (
      <p className="muted small">
        Chain verification needs audit.read on every project (the chain spans them all).
      </p>
    );
  }
  return (
    <div className="verify" aria-live="polite">
      {report.loading && (
        <span className="muted" role="status">
          <span className="spinner" aria-hidden="true" /> Verifying the hash chain…
        </span>
      )}
      {!report.loading && report.error !== undefined && <ErrorNotice error={report.error} />}
      {!report.loading && report.data && (
        <span
          className={`pill ${report.data.ok ? 'pill-ok' : 'pill-fail'}`}
          data-testid="chain-status"
        >
          {report.data.ok
            ? `Chain verified: ${report.data.rows} rows intact`
            : `Chain broken at row ${report.data.first_broken?.seq ?? '?'}: ${report.data.first_broken?.reason ?? 'stored outputs do not match their hashes'}`}
        </span>
      )}
      {!report.loading && report.data && (
        <span className="muted small">
          {' '}
          checked in {formatDuration(report.data.duration_ms)}
          {report.data.output_mismatches?.length
            ? `; ${report.data.output_mismatches.length} output mismatches`
            : ''}
        </span>
      )}{' '}
      <button type="button" onClick={report.reload} disabled={report.loading}>
        Verify again
      </button>
    </div>
  );
}

function EventsTable({ events }: { events: AuditEventView[] }) {
  if (events.length === 0) {
    return <p className="notice">No audit rows match.</p>;
  }
  return (
    <table className="table">
      <thead>
        <tr>
          <th>#</th>
          <th>Time</th>
          <th>Kind</th>
          <th>Actor</th>
          <th>Operation</th>
          <th>VM</th>
          <th>Status</th>
          <th>Error</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.seq}>
            <td data-label="#">{e.seq}</td>
            <td data-label="Time">{formatTime(e.at)}</td>
            <td data-label="Kind">{e.kind}</td>
            <td data-label="Actor">{e.actor || '—'}</td>
            <td data-label="Operation">{e.operation}</td>
            <td data-label="VM">{e.vm_id ?? '—'}</td>
            <td data-label="Status">{e.status ?? '—'}</td>
            <td data-label="Error" className="small">
              {e.error ?? ''}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface PageOf<T> {
  view: View;
  rows: T[];
  next: string | null;
}

export function AuditPage() {
  const { api } = useSession();
  const [view, setView] = useState<View>('executions');
  const [draft, setDraft] = useState<AuditFilters>(NO_FILTERS);
  const [filters, setFilters] = useState<AuditFilters>(NO_FILTERS);
  const [older, setOlder] = useState<{ rows: unknown[]; next: string | null }>();
  const [exporting, setExporting] = useState<Progress>();
  const [exportError, setExportError] = useState<unknown>();

  const page = useLoad(
    async (signal): Promise<PageOf<unknown>> => {
      setOlder(undefined);
      const body = await api.json<AuditPage>(
        `/api/audit/${view}?${auditQuery(filters, { limit: '100' })}`,
        {
          signal,
        },
      );
      return { view, rows: body[view] ?? [], next: body.next_cursor };
    },
    [api, view, filters],
  );

  const next = older ? older.next : page.data?.next;
  const rows = [...(page.data?.rows ?? []), ...(older?.rows ?? [])];

  async function loadOlder() {
    if (!next) {
      return;
    }
    try {
      const body = await api.json<AuditPage>(
        `/api/audit/${view}?${auditQuery(filters, { limit: '100', cursor: next })}`,
      );
      setOlder((o) => ({
        rows: [...(o?.rows ?? []), ...(body[view] ?? [])],
        next: body.next_cursor,
      }));
    } catch (err) {
      setExportError(err);
    }
  }

  async function exportAs(format: 'csv' | 'ndjson') {
    setExportError(undefined);
    setExporting({ done: 0 });
    try {
      await downloadTo(
        api,
        `/api/audit/${view}?${auditQuery(filters, { format })}`,
        `audit-${view}.${format}`,
        setExporting,
      );
    } catch (err) {
      setExportError(err);
    } finally {
      setExporting(undefined);
    }
  }

  function apply(e: FormEvent) {
    e.preventDefault();
    setFilters(draft);
  }

  const field = (k: keyof AuditFilters, label: string, props: Record<string, string> = {}) => (
    <label>
      {label}
      <input
        name={k}
        value={draft[k]}
        onChange={(e) => setDraft((d) => ({ ...d, [k]: e.target.value }))}
        {...props}
      />
    </label>
  );

  return (
    <section aria-labelledby="audit-title">
      <header className="page-head">
        <h1 id="audit-title">Audit trail</h1>
        <VerifyPanel />
      </header>
      <div className="segmented" role="tablist" aria-label="Audit view">
        <button
          type="button"
          role="tab"
          aria-selected={view === 'executions'}
          onClick={() => setView('executions')}
        >
          Command history
        </button>
        <button
          type="button"
          role="tab"
          aria-selected={view === 'events'}
          onClick={() => setView('events')}
        >
          All audit rows
        </button>
      </div>
      <form className="card form filters" onSubmit={apply} aria-label="Filters">
        <div className="form-row">
          {field('actor', 'Actor', { placeholder: 'username' })}
          {field('vmId', 'VM', { placeholder: 'vm id' })}
          {field('operation', 'Operation', { placeholder: 'execute, shutdown, file.read…' })}
          {field('outcome', 'Outcome', { placeholder: 'ok, error, timed_out…', list: 'outcomes' })}
          {field('from', 'From', { type: 'datetime-local' })}
          {field('to', 'To', { type: 'datetime-local' })}
        </div>
        <datalist id="outcomes">
          <option value="ok" />
          <option value="error" />
          <option value="timed_out" />
          <option value="AGENT_NOT_CONNECTED" />
          <option value="PERMISSION_DENIED" />
        </datalist>
        <p className="actions">
          <button type="submit" className="primary">
            Apply filters
          </button>
          <button
            type="button"
            onClick={() => {
              setDraft(NO_FILTERS);
              setFilters(NO_FILTERS);
            }}
          >
            Clear
          </button>
          <span className="spacer" />
          <button
            type="button"
            onClick={() => void exportAs('csv')}
            disabled={exporting !== undefined}
          >
            Export CSV
          </button>
          <button
            type="button"
            onClick={() => void exportAs('ndjson')}
            disabled={exporting !== undefined}
          >
            Export NDJSON
          </button>
        </p>
        {exporting && <ProgressBar progress={exporting} label="Exporting" />}
        {exportError !== undefined && <ErrorNotice error={exportError} />}
      </form>
      {page.error !== undefined && <ErrorNotice error={page.error} onRetry={page.reload} />}
      {page.loading && !page.data && (
        <p className="muted" role="status">
          <span className="spinner" aria-hidden="true" /> Loading…
        </p>
      )}
      {page.data &&
        (page.data.view === 'executions' ? (
          <ExecutionsTable executions={rows as AuditExecutionView[]} showVm />
        ) : (
          <EventsTable events={rows as AuditEventView[]} />
        ))}
      {page.data && next && (
        <p className="actions">
          <button type="button" onClick={() => void loadOlder()}>
            Older rows…
          </button>
        </p>
      )}
      {page.data && (
        <p className="muted small">
          Newest first. Times in your browser’s time zone (
          {Intl.DateTimeFormat().resolvedOptions().timeZone}).
        </p>
      )}
    </section>
  );
}
