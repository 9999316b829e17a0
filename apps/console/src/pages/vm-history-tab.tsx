import { useState } from 'react';
import type { AuditExecutionView, AuditExecutionsPage, VmView } from '@lq/api';
import { useSession } from '../auth/session-context';
import { ErrorNotice } from '../components/error-notice';
import { ExecutionsTable } from '../components/executions';
import { useLoad } from '../lib/hooks';

/** This VM's command history (audit.read on its project). */
export function HistoryTab({ vm, lastRunAt }: { vm: VmView; lastRunAt?: string }) {
  const { api } = useSession();
  const [more, setMore] = useState<AuditExecutionView[]>([]);
  const [cursor, setCursor] = useState<string | null>();
  const [moreError, setMoreError] = useState<unknown>();
  const first = useLoad(
    async (signal) => {
      const page = await api.json<AuditExecutionsPage>(
        `/api/audit/executions?vm_id=${encodeURIComponent(vm.id)}&limit=50`,
        { signal },
      );
      setMore([]);
      setCursor(page.next_cursor);
      return page;
    },
    [api, vm.id, lastRunAt],
  );

  async function loadMore() {
    try {
      const page = await api.json<AuditExecutionsPage>(
        `/api/audit/executions?vm_id=${encodeURIComponent(vm.id)}&limit=50&cursor=${cursor}`,
      );
      setMore((m) => [...m, ...page.executions]);
      setCursor(page.next_cursor);
    } catch (err) {
      setMoreError(err);
    }
  }

  if (first.error !== undefined) {
    return <ErrorNotice error={first.error} onRetry={first.reload} />;
  }
  if (!first.data) {
    return (
      <p className="muted" role="status">
        <span className="spinner" aria-hidden="true" /> Loading the command history…
      </p>
    );
  }
  return (
    <div>
      <p className="actions">
        <button type="button" onClick={first.reload}>
          Refresh
        </button>
      </p>
      <ExecutionsTable executions={[...first.data.executions, ...more]} showVm={false} />
      {cursor && (
        <p className="actions">
          <button type="button" onClick={() => void loadMore()}>
            Older executions…
          </button>
        </p>
      )}
      {moreError !== undefined && <ErrorNotice error={moreError} />}
    </div>
  );
}
