// Asynchronous executions (/api/executions) and fleet runs (/api/runs).

import type { ExecuteBody } from './guest.js';

export type ExecutionStatus =
  'pending' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'agent_lost';

/**
 * Why a command never started, when the guest refused it (the agent's code and message):
 * `command_not_found` (exit 127, as a shell says), `command_not_executable` (126: not
 * executable, or the working directory is unusable), `refused` (1: frozen guest, unknown user
 * or group, outside the caller's run-as limits, blocked by policy, busy).
 */
export type ExecutionRefusal = 'command_not_found' | 'command_not_executable' | 'refused';

const REFUSING_CODES = new Set([
  'EXEC_FAILED',
  'USER_NOT_FOUND',
  'GROUP_NOT_FOUND',
  'FROZEN',
  'NOT_ALLOWED',
  'OPERATION_BLOCKED',
  'PERMISSION_DENIED',
  'INVALID_REQUEST',
  'BUSY',
  'TOO_LARGE',
]);

/** The refusal an agent's error code and message stand for; null when it is not one. */
export function refusalOf(
  agentCode: string | null | undefined,
  message: string,
): ExecutionRefusal | null {
  if (!agentCode || !REFUSING_CODES.has(agentCode)) {
    return null;
  }
  if (agentCode === 'EXEC_FAILED') {
    return /: not found \(PATH=/.test(message) ? 'command_not_found' : 'command_not_executable';
  }
  return 'refused';
}

/** The exit code a shell gives for a refusal (127, 126, 1). */
export function refusalExitCode(r: ExecutionRefusal): number {
  return r === 'command_not_found' ? 127 : r === 'command_not_executable' ? 126 : 1;
}

/**
 * An execution: the answer of POST /api/executions/:id/cancel, the `end` event of its output
 * stream, and the base of the start and status answers.
 */
export interface ExecutionView {
  id: string;
  vm_id: string;
  node_id: string;
  project_id: string;
  run_id: string | null;
  actor: string;
  status: ExecutionStatus;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  /** Set when the guest refused to start the command (status failed, exit_code null). */
  refusal: ExecutionRefusal | null;
  command: string | null;
  argv: string[] | null;
  run_as_user: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  duration_ms: number | null;
  stdout_total_bytes: number | null;
  stderr_total_bytes: number | null;
  /** Output bytes stored (what /output serves). */
  stored_output_bytes: number;
  /**
   * True when the stored output is not all the command wrote: the per-execution cap
   * (LQ_EXEC_OUTPUT_MAX_BYTES) was reached, or output waited longer than memory allowed for a
   * database that was away. The totals above still count everything.
   */
  stored_output_truncated: boolean;
}

/** POST /api/vms/:id/executions (202) */
export interface ExecutionStartedView extends ExecutionView {
  links: { self: string; output: string; cancel: string };
}

/** GET /api/executions/:id: the execution and its output so far (up to 1 MiB inline). */
export interface ExecutionStatusView extends ExecutionView {
  stdout: string;
  stderr: string;
  output_truncated: boolean;
  /**
   * The output is not shown: only the execution's own actor and holders of audit.read_output on
   * its project read it (stdout and stderr are then "").
   */
  output_withheld?: boolean;
  /** The sequence number of the last chunk shown: follow the output from there. */
  last_seq: number;
}

/** One output chunk: `event: output` (id = seq) of GET /api/executions/:id/output?follow=1. */
export interface OutputChunkView {
  seq: number;
  stream: 'stdout' | 'stderr';
  /** Decoded as UTF-8, a character split between chunks kept whole. */
  text: string;
  /** The exact bytes. */
  base64: string;
  /** Bytes an agent before 0.4.0 dropped before this chunk (its rate limit); absent when none. */
  dropped_bytes?: number;
  /** Secrets replaced by "[redacted]" in this chunk (LQ_OUTPUT_REDACT_*); absent when none. */
  redactions?: number;
}

/** GET /api/executions/:id/output (without follow) */
export interface OutputPageView {
  chunks: OutputChunkView[];
  next_after: number;
}

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'stopped' | 'cancelled';

/** The VMs of POST /api/runs: ids, a project, or labels ("env=prod,role=db" or an object). */
export interface RunTargetBody {
  vm_ids?: string[];
  project?: string;
  labels?: string | Record<string, string>;
}

/** POST /api/runs */
export interface RunBody extends ExecuteBody {
  target: RunTargetBody;
  /** VMs at a time: a number or a percentage ("10%"); default 10. */
  max_concurrency?: number | string;
  /** Start no more VMs once more than this many failed: a number or a percentage. */
  max_errors?: number | string;
}

export interface RunVmView {
  vm_id: string;
  /** queued, denied, skipped, failed_to_start, or its execution's status. */
  state: string;
  execution_id: string | null;
  exit_code: number | null;
  error: string | null;
}

/** POST /api/runs (202), GET /api/runs/:id, its cancel, and the `end` event of its events. */
export interface RunView {
  id: string;
  actor: string;
  status: RunStatus;
  target: Record<string, unknown>;
  command: string | null;
  argv: string[] | null;
  max_concurrency: number;
  max_errors: number | null;
  created_at: string;
  ended_at: string | null;
  /** How many VMs are in each state. */
  summary: Record<string, number>;
  vms: RunVmView[];
}

/** `event: progress` of GET /api/runs/:id/events */
export interface RunProgressView {
  status: RunStatus;
  summary: Record<string, number>;
}

/** GET /api/executions: newest first; pass `next_cursor` as `cursor` for the next page. */
export interface ExecutionListView {
  executions: ExecutionView[];
  next_cursor: string | null;
}

/** A run in GET /api/runs: the run without its per-VM rows (GET /api/runs/:id has them). */
export type RunSummaryView = Omit<RunView, 'vms'> & { vm_count: number };

/** GET /api/runs: newest first; pass `next_cursor` as `cursor` for the next page. */
export interface RunListView {
  runs: RunSummaryView[];
  next_cursor: string | null;
}

/** POST /api/runs/preview (a run's body): the VMs a run would target, nothing run. */
export interface RunPreviewView {
  vms: Array<{
    vm_id: string;
    project_id: string;
    agent_state: string;
    /** would_run, or denied (error says why). */
    state: 'would_run' | 'denied';
    error: string | null;
  }>;
  /** LQ_RUN_MAX_VMS: a run over more VMs is refused. */
  max_vms: number;
}
