import { refusalOf, type ExecutionRefusal, type ExecutionView } from '@lq/api';
import type { ExecutionRow, OutputChunk } from './executions.repository.js';

/** An execution as the API shows it (@lq/api). */
export type { ExecutionView };

/** The refusal a stored error (`AGENT_ERROR:EXEC_FAILED: cannot run …`) stands for. */
export function refusalOfError(error: string | null): ExecutionRefusal | null {
  const m = error === null ? null : /^[A-Z_]+:([A-Z_]+): ([\s\S]*)$/.exec(error);
  return m ? refusalOf(m[1], m[2]!) : null;
}

export function executionView(r: ExecutionRow): ExecutionView {
  const req = r.request;
  const num = (v: string | null) => (v === null ? null : Number(v));
  return {
    id: r.id,
    vm_id: r.vm_id,
    node_id: r.node_id,
    project_id: r.project_id,
    run_id: r.run_id,
    actor: r.actor,
    status: r.status,
    exit_code: r.exit_code,
    signal: r.signal,
    error: r.error,
    refusal: r.status === 'failed' && r.exit_code === null ? refusalOfError(r.error) : null,
    command: typeof req.command === 'string' ? req.command : null,
    argv: Array.isArray(req.argv) ? (req.argv as string[]) : null,
    run_as_user: typeof req.run_as_user === 'string' ? req.run_as_user : null,
    created_at: r.created_at.toISOString(),
    started_at: r.started_at?.toISOString() ?? null,
    ended_at: r.ended_at?.toISOString() ?? null,
    duration_ms: r.ended_at && r.started_at ? r.ended_at.getTime() - r.started_at.getTime() : null,
    stdout_total_bytes: num(r.stdout_total_bytes),
    stderr_total_bytes: num(r.stderr_total_bytes),
    stored_output_bytes: Number(r.output_stored_bytes ?? 0),
    stored_output_truncated: r.output_truncated ?? false,
  };
}

/**
 * Where a follower's chunks and the end go (SSE, gRPC stream). The sink bounds what it buffers:
 * `chunk` answers false once its reader lags by more than its bound, and the follower then sends
 * nothing more until `drained` resolves (it catches up from the store, so nothing is lost).
 */
export interface FollowSink {
  chunk(c: OutputChunk): boolean;
  /** Resolves when the reader has caught up (or has gone away). */
  drained(): Promise<void>;
  end(view: ExecutionView): void;
}
