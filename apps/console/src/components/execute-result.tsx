import type { AuditExecutionView, ExecuteResultView as ExecuteResult } from '@lq/api';
import { formatBytes, formatDuration } from '../lib/format';

/** A command's result, from POST /execute or from the command history. */
export interface RunOutput {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Bytes the command wrote, when known (the shown text may be less). */
  stdoutBytes: number | null;
  stderrBytes: number | null;
  /** ok, or the error code the history recorded. */
  status: string | null;
  error: string | null;
}

export function fromExecuteResult(r: ExecuteResult): RunOutput {
  return {
    exitCode: r.exit_code,
    signal: r.signal,
    timedOut: r.timed_out,
    durationMs: r.duration_ms,
    stdout: r.stdout,
    stderr: r.stderr,
    stdoutTruncated: r.stdout_truncated,
    stderrTruncated: r.stderr_truncated,
    stdoutBytes: r.stdout_total_bytes,
    stderrBytes: r.stderr_total_bytes,
    status: 'ok',
    error: null,
  };
}

export function fromExecution(e: AuditExecutionView): RunOutput {
  return {
    exitCode: e.exit_code,
    signal: null,
    timedOut: e.status === 'timed_out',
    durationMs: e.duration_ms,
    stdout: e.stdout ?? '',
    stderr: e.stderr ?? '',
    stdoutTruncated: e.stdout_truncated === true,
    stderrTruncated: e.stderr_truncated === true,
    stdoutBytes: e.stdout_bytes,
    stderrBytes: e.stderr_bytes,
    status: e.status,
    error: e.error,
  };
}

export type Tone = 'ok' | 'fail' | 'warn' | 'pending';

/** One line that says how the command ended. */
export function outcomeOf(o: RunOutput): { tone: Tone; text: string } {
  if (o.status === null && o.exitCode === null) {
    return { tone: 'pending', text: 'Running, or no outcome was recorded' };
  }
  if (o.timedOut) {
    return { tone: 'fail', text: 'Timed out: the command was killed' };
  }
  if (o.signal) {
    return { tone: 'fail', text: `Killed by ${o.signal}` };
  }
  if (o.status && o.status !== 'ok' && o.exitCode === null) {
    return { tone: 'fail', text: `Failed: ${o.error || o.status}` };
  }
  if (o.exitCode === 0) {
    return { tone: 'ok', text: 'Exit code 0 (success)' };
  }
  return { tone: 'warn', text: `Exit code ${o.exitCode ?? '—'}` };
}

/** "stdout was cut: 64 KiB of 1.2 MiB shown", or undefined when nothing was cut. */
export function truncationNotice(
  stream: 'stdout' | 'stderr',
  truncated: boolean,
  shownText: string,
  totalBytes: number | null,
): string | undefined {
  if (!truncated) {
    return undefined;
  }
  const shown = new TextEncoder().encode(shownText).length;
  return totalBytes !== null && totalBytes > shown
    ? `${stream} was cut: ${formatBytes(shown)} of ${formatBytes(totalBytes)} shown`
    : `${stream} was cut to the capture limit`;
}

function Stream({
  name,
  text,
  notice,
}: {
  name: 'stdout' | 'stderr';
  text: string;
  notice?: string;
}) {
  return (
    <section className={`stream stream-${name}`} aria-label={name}>
      <h4>{name}</h4>
      {notice && (
        <p className="notice notice-warn small" role="note">
          {notice}
        </p>
      )}
      {text ? <pre>{text}</pre> : <p className="muted small">(empty)</p>}
    </section>
  );
}

export function ExecuteResultView({ output, title }: { output: RunOutput; title?: string }) {
  const outcome = outcomeOf(output);
  return (
    <div className="result" data-testid="execute-result">
      {title && <h3>{title}</h3>}
      <p className="result-summary">
        <span className={`pill pill-${outcome.tone}`}>{outcome.text}</span>
        <span className="muted">Duration {formatDuration(output.durationMs)}</span>
      </p>
      <Stream
        name="stdout"
        text={output.stdout}
        notice={truncationNotice(
          'stdout',
          output.stdoutTruncated,
          output.stdout,
          output.stdoutBytes,
        )}
      />
      <Stream
        name="stderr"
        text={output.stderr}
        notice={truncationNotice(
          'stderr',
          output.stderrTruncated,
          output.stderr,
          output.stderrBytes,
        )}
      />
    </div>
  );
}
