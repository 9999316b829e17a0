import { useState } from 'react';
import type { AuditExecutionView } from '@lq/api';
import { formatDuration, formatTime } from '../lib/format';
import { ExecuteResultView, fromExecution, outcomeOf } from './execute-result';
import { Modal } from './modal';

export function commandOf(e: AuditExecutionView): string {
  return e.command ?? (e.argv ? e.argv.join(' ') : '—');
}

export function ExecutionDetail({ execution: e }: { execution: AuditExecutionView }) {
  return (
    <div>
      <dl className="facts">
        <dt>Command</dt>
        <dd>
          <pre className="inline-pre">{commandOf(e)}</pre>
        </dd>
        <dt>VM</dt>
        <dd>
          {e.vm_id ?? '—'}{' '}
          <span className="muted small">
            (node {e.node_id ?? '—'}, project {e.project_id ?? '—'})
          </span>
        </dd>
        <dt>Run as</dt>
        <dd>
          {[e.run_as_user, e.run_as_group].filter(Boolean).join(':') || 'the agent’s default user'}
        </dd>
        <dt>Actor</dt>
        <dd>
          {e.actor}{' '}
          <span className="muted small">
            ({e.auth_method}, from {e.source_ip || '—'})
          </span>
        </dd>
        <dt>Started</dt>
        <dd>{formatTime(e.started_at)}</dd>
        <dt>Ended</dt>
        <dd>{formatTime(e.ended_at)}</dd>
        <dt>Request id</dt>
        <dd className="small">{e.request_id}</dd>
      </dl>
      <OutputNotices execution={e} />
      <ExecuteResultView output={fromExecution(e)} />
    </div>
  );
}

/** Why the stored output is not shown, or what was redacted from it. */
export function OutputNotices({ execution: e }: { execution: AuditExecutionView }) {
  const redacted = e.output_redaction ? e.output_redaction.stdout + e.output_redaction.stderr : 0;
  return (
    <>
      {e.output_withheld && (
        <p className="notice" role="note">
          Output withheld: reading stored output needs audit.read_output on project{' '}
          {e.project_id ?? '—'}.
        </p>
      )}
      {redacted > 0 && (
        <p className="notice" role="note">
          {redacted === 1 ? '1 secret was' : `${redacted} secrets were`} redacted from the stored
          output.
        </p>
      )}
    </>
  );
}

/** The command history as a table; "Open" shows an execution's output. */
export function ExecutionsTable({
  executions,
  showVm,
}: {
  executions: AuditExecutionView[];
  showVm: boolean;
}) {
  const [open, setOpen] = useState<AuditExecutionView>();
  if (executions.length === 0) {
    return <p className="notice">No executions match.</p>;
  }
  return (
    <>
      <table className="table executions">
        <thead>
          <tr>
            <th>Started</th>
            <th>Actor</th>
            {showVm && <th>VM</th>}
            <th>Command</th>
            <th>Run as</th>
            <th>Outcome</th>
            <th>Duration</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {executions.map((e) => {
            const o = outcomeOf(fromExecution(e));
            return (
              <tr key={e.seq} data-request-id={e.request_id}>
                <td data-label="Started">{formatTime(e.started_at)}</td>
                <td data-label="Actor">{e.actor}</td>
                {showVm && <td data-label="VM">{e.vm_id ?? '—'}</td>}
                <td data-label="Command">
                  <code className="clip">{commandOf(e)}</code>
                </td>
                <td data-label="Run as">{e.run_as_user || '—'}</td>
                <td data-label="Outcome">
                  <span className={`pill pill-${o.tone}`}>
                    {e.status === 'ok' ? `exit ${e.exit_code ?? '—'}` : (e.status ?? 'running')}
                  </span>
                </td>
                <td data-label="Duration">{formatDuration(e.duration_ms)}</td>
                <td>
                  <button type="button" onClick={() => setOpen(e)}>
                    Open
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {open && (
        <Modal title={`Execution #${open.seq}`} onClose={() => setOpen(undefined)} wide>
          <ExecutionDetail execution={open} />
        </Modal>
      )}
    </>
  );
}
