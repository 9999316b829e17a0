import { useEffect, useRef, useState } from 'react';
import type { FormEvent } from 'react';
import type { ApiClient } from '../api/client';
import type { ExecuteResultView as ExecuteResult } from '@lq/api';
import type { ExecLimits } from '../auth/permissions';
import { ErrorNotice } from './error-notice';
import { ExecuteResultView, fromExecuteResult, type RunOutput } from './execute-result';
import { Modal } from './modal';

export interface RunRequest {
  command: string;
  runAsUser: string;
  runAsGroup: string;
  timeoutSeconds: number;
}

export interface LastRun {
  request: RunRequest;
  output: RunOutput;
  at: string;
}

/** The body of POST /api/vms/:id/execute for the form's values. */
export function executeBody(r: RunRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { command: r.command, timeout_seconds: r.timeoutSeconds };
  if (r.runAsUser.trim()) {
    body.run_as_user = r.runAsUser.trim();
  }
  if (r.runAsGroup.trim()) {
    body.run_as_group = r.runAsGroup.trim();
  }
  return body;
}

/** Why the form cannot be sent yet, or undefined. */
export function formProblem(r: RunRequest, limits: ExecLimits): string | undefined {
  if (!r.command.trim()) {
    return 'Enter a command or a script.';
  }
  if (!Number.isInteger(r.timeoutSeconds) || r.timeoutSeconds < 1 || r.timeoutSeconds > 86_400) {
    return 'The timeout must be a whole number of seconds from 1 to 86400.';
  }
  const user = r.runAsUser.trim();
  if (limits.nonRootOnly && (user === '' || user === 'root' || user === '0')) {
    return 'Your role only lets you run commands as a non-root user: fill in “Run as user”.';
  }
  if (limits.users && !limits.users.includes(user)) {
    return `Your role lets you run commands only as ${limits.users.join(', ')}.`;
  }
  return undefined;
}

function useElapsed(running: boolean): number {
  const [elapsed, setElapsed] = useState(0);
  useEffect(() => {
    if (!running) {
      return;
    }
    const started = Date.now();
    setElapsed(0);
    const t = setInterval(() => setElapsed(Date.now() - started), 250);
    return () => clearInterval(t);
  }, [running]);
  return elapsed;
}

/**
 * Run Script: a command line or a multi-line script (run by the guest's /bin/sh -c), as a
 * user and group, with a timeout. The result is handed to the page too, so it stays there
 * after the dialog closes.
 */
export function RunScriptModal({
  api,
  vmId,
  limits,
  onClose,
  onResult,
  initial,
}: {
  api: ApiClient;
  vmId: string;
  limits: ExecLimits;
  onClose: () => void;
  onResult: (run: LastRun) => void;
  initial?: RunRequest;
}) {
  const [form, setForm] = useState<RunRequest>(
    initial ?? { command: '', runAsUser: '', runAsGroup: '', timeoutSeconds: 30 },
  );
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>();
  const [run, setRun] = useState<LastRun>();
  const abort = useRef<AbortController | undefined>(undefined);
  const elapsed = useElapsed(running);
  const problem = formProblem(form, limits);

  useEffect(() => () => abort.current?.abort(), []);

  async function execute(e: FormEvent) {
    e.preventDefault();
    if (problem || running) {
      return;
    }
    setRunning(true);
    setError(undefined);
    setRun(undefined);
    abort.current = new AbortController();
    try {
      const r = await api.post<ExecuteResult>(
        `/api/vms/${encodeURIComponent(vmId)}/execute`,
        executeBody(form),
        abort.current.signal,
      );
      const done: LastRun = {
        request: form,
        output: fromExecuteResult(r),
        at: new Date().toISOString(),
      };
      setRun(done);
      onResult(done);
    } catch (err) {
      if ((err as Error)?.name !== 'AbortError') {
        setError(err);
      }
    } finally {
      setRunning(false);
    }
  }

  const set = <K extends keyof RunRequest>(k: K, v: RunRequest[K]) =>
    setForm((f) => ({ ...f, [k]: v }));

  return (
    <Modal title={`Run script on ${vmId}`} onClose={onClose} wide>
      <form onSubmit={(e) => void execute(e)} className="form">
        <label>
          Command or script
          <textarea
            name="command"
            rows={5}
            spellCheck={false}
            placeholder={'uname -a\n# several lines run as one script (/bin/sh -c)'}
            value={form.command}
            onChange={(e) => set('command', e.target.value)}
            disabled={running}
          />
        </label>
        <div className="form-row">
          <label>
            Run as user
            <input
              name="run_as_user"
              placeholder={limits.nonRootOnly ? 'required: a non-root user' : 'the agent’s default'}
              value={form.runAsUser}
              onChange={(e) => set('runAsUser', e.target.value)}
              disabled={running}
              autoComplete="off"
            />
          </label>
          <label>
            Group
            <input
              name="run_as_group"
              placeholder="the user’s primary group"
              value={form.runAsGroup}
              onChange={(e) => set('runAsGroup', e.target.value)}
              disabled={running}
              autoComplete="off"
            />
          </label>
          <label>
            Timeout (s)
            <input
              name="timeout_seconds"
              type="number"
              min={1}
              max={86400}
              value={Number.isNaN(form.timeoutSeconds) ? '' : form.timeoutSeconds}
              onChange={(e) => set('timeoutSeconds', e.target.valueAsNumber)}
              disabled={running}
            />
          </label>
        </div>
        {problem && form.command.trim() && <p className="notice notice-warn small">{problem}</p>}
        <p className="actions">
          <button type="submit" className="primary" disabled={Boolean(problem) || running}>
            {running ? 'Running…' : 'Execute'}
          </button>
          {running && (
            <button type="button" onClick={() => abort.current?.abort()}>
              Stop waiting
            </button>
          )}
          <button type="button" onClick={onClose}>
            Close
          </button>
        </p>
      </form>
      {running && (
        <div className="progress" role="status">
          <span className="spinner" aria-hidden="true" /> Running in the guest…{' '}
          {Math.floor(elapsed / 1000)} s (times out after {form.timeoutSeconds} s). Stop waiting
          leaves the command running until its timeout.
        </div>
      )}
      {error !== undefined && <ErrorNotice error={error} />}
      {run && <ExecuteResultView output={run.output} />}
    </Modal>
  );
}
