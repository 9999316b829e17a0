import { constants } from 'node:os';
import { refusalExitCode, type ExecutionRefusal } from '@lq/api';
import {
  ApiError,
  InterruptedError,
  NotOfferedError,
  SignInError,
  UnreachableError,
  UsageError,
} from './errors.js';

/** lqctl's own exit codes (exec and run pass the remote outcome through, see below). */
export const Exit = {
  OK: 0,
  /** The control plane refused or an operation failed (the message says why); run: a VM did not succeed. */
  FAILED: 1,
  /** Bad arguments, or an operation this control plane does not offer. */
  USAGE: 2,
  /** The control plane cannot be reached. */
  UNREACHABLE: 3,
  /** 401: not signed in, or the key or session was revoked or expired. */
  UNAUTHENTICATED: 4,
  /** 403: a permission is missing. */
  DENIED: 5,
  /** exec: the remote command timed out. */
  TIMED_OUT: 124,
  /** exec: cancelled (Ctrl-C); run: cancelled. */
  CANCELLED: 130,
  /** exec: the guest refused to start the command (frozen, unknown user, run-as limits). */
  REFUSED: 1,
  /** exec: the command could not be run (not executable, unusable working directory). */
  NOT_EXECUTABLE: 126,
  /** exec: the command was not found. */
  NOT_FOUND: 127,
  /** exec: the agent was lost, or the execution failed without an exit code. */
  LOST: 255,
} as const;

/** What an execution view (GET /api/executions/:id, the SSE end event) says about its end. */
export interface ExecutionOutcome {
  status: string;
  exit_code?: number | null;
  signal?: string | null;
  refusal?: ExecutionRefusal | null;
}

/** The signal number of "SIGTERM", "TERM" or "15"; undefined for an unknown name. */
export function signalNumber(signal: string): number | undefined {
  if (/^\d+$/.test(signal)) {
    return Number(signal);
  }
  const name = (signal.startsWith('SIG') ? signal : `SIG${signal}`).toUpperCase();
  return (constants.signals as Record<string, number | undefined>)[name];
}

/**
 * The exit code `lqctl exec` ends with, like a local shell's: the command's exit code, 128+N
 * for signal N, 124 timed out (as timeout(1)), 130 cancelled (as Ctrl-C); a command the guest
 * refused to start 127 (not found), 126 (not executable, bad cwd) or 1 (frozen, unknown user,
 * limits), as docker exec and ssh; 255 when the agent was lost or the execution failed without
 * an exit code (as ssh).
 */
export function exitCodeOfExecution(view: ExecutionOutcome): number {
  switch (view.status) {
    case 'timed_out':
      return Exit.TIMED_OUT;
    case 'cancelled':
      return Exit.CANCELLED;
    case 'agent_lost':
      return Exit.LOST;
    default:
      break;
  }
  if (view.refusal) {
    return refusalExitCode(view.refusal);
  }
  if (view.signal) {
    const n = signalNumber(view.signal);
    return n === undefined ? Exit.LOST : 128 + n;
  }
  if (typeof view.exit_code === 'number') {
    return view.exit_code & 0xff;
  }
  return view.status === 'succeeded' ? Exit.OK : Exit.LOST;
}

/** A failure as one line for stderr and the exit code that goes with it. */
export function describeFailure(err: unknown): { message: string; exitCode: number } {
  if (err instanceof UsageError) {
    return { message: err.message, exitCode: Exit.USAGE };
  }
  if (err instanceof NotOfferedError) {
    return { message: err.message, exitCode: Exit.USAGE };
  }
  if (err instanceof SignInError) {
    return { message: err.message, exitCode: Exit.UNAUTHENTICATED };
  }
  if (err instanceof InterruptedError) {
    return { message: 'interrupted', exitCode: Exit.CANCELLED };
  }
  if (err instanceof UnreachableError) {
    return {
      message: `${err.message} (set --server or LQ_SERVER, or run lqctl login --server URL)`,
      exitCode: Exit.UNREACHABLE,
    };
  }
  if (err instanceof ApiError) {
    if (err.status === 401) {
      return {
        message: `not signed in or key revoked: run lqctl login (the server said: ${err.message})`,
        exitCode: Exit.UNAUTHENTICATED,
      };
    }
    if (err.status === 403) {
      const needs = err.permission ? `the ${err.permission} permission is missing: ` : '';
      return { message: `permission denied: ${needs}${err.message}`, exitCode: Exit.DENIED };
    }
    return { message: `${err.message} (${err.status} ${err.code})`, exitCode: Exit.FAILED };
  }
  return {
    message: err instanceof Error ? err.message : String(err),
    exitCode: Exit.FAILED,
  };
}
