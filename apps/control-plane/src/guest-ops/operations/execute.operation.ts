import { create } from '@bufbuild/protobuf';
import { redactExecute, sha256Hex } from '@lq/audit';
import {
  ExecuteRequestSchema,
  firstUnsafeRunAsEnv,
  type ExecuteRequest,
  type ExecuteResponse,
  type ExecuteScriptRequest,
} from '@lq/proto';
import type { ControlPlaneConfig } from '../../config/env.schema.js';
import { runAsLimitsOf } from '../../access/vm-access.service.js';
import { connectBinding } from '../connect-binding.js';
import type { GuestOperationSpec, OutcomeFields, SpecEnv } from '../guest-operation.js';
import { checkPath, invalid } from './validate.js';

export interface ExecuteInput {
  command?: string;
  argv?: string[];
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  stdin?: Uint8Array;
  timeoutSeconds?: number;
  runAsUser?: string;
  runAsGroup?: string;
  includeSupplementaryGroups?: boolean;
  outputLimitBytes?: number;
  /** Names of env variables whose values are secrets: never written to the audit trail. */
  secretEnv?: string[];
}

// Room in a reply for everything but the two captured streams.
const REPLY_ENVELOPE_BYTES = 64 * 1024;

// The agent needs a moment after a command's own timeout to kill it and answer.
export const EXEC_REPLY_MARGIN_MS = 5000;

/**
 * An execution's outcome row, synchronous or not: status, exit code, the sha256 and size of each
 * stream as the agent returned it, and the first `cap` bytes of each kept for the command history.
 */
export function executeOutcome(r: ExecuteResponse, cap: number): OutcomeFields {
  return {
    // One vocabulary with the executions API: a non-zero exit or a signal is `failed`.
    status: r.timedOut
      ? 'timed_out'
      : r.cancelled
        ? 'cancelled'
        : r.exitCode === 0 && !r.signal
          ? 'ok'
          : 'failed',
    exitCode: r.exitCode,
    stdout: { sha256: sha256Hex(r.stdout), bytes: r.stdout.length },
    stderr: { sha256: sha256Hex(r.stderr), bytes: r.stderr.length },
    params: {
      signal: r.signal || undefined,
      agent_stdout_truncated: r.stdoutTruncated || undefined,
      agent_stderr_truncated: r.stderrTruncated || undefined,
      stdout_total_bytes: Number(r.stdoutTotalBytes),
      stderr_total_bytes: Number(r.stderrTotalBytes),
    },
    output: {
      stdout: r.stdout.subarray(0, cap),
      stderr: r.stderr.subarray(0, cap),
      stdoutTruncated: r.stdout.length > cap,
      stderrTruncated: r.stderr.length > cap,
    },
  };
}

/**
 * Validates an execution's input (400 naming the field) and builds the agent's request, limits
 * aside (the grant adds them). Shared by synchronous, asynchronous and fleet executions.
 */
export function executeRequest(
  input: ExecuteInput,
  config: ControlPlaneConfig,
  timeoutMs: number,
): ExecuteRequest {
  const { limits } = config;
  const hasCommand = (input.command ?? '') !== '';
  const hasArgv = (input.argv?.length ?? 0) > 0;
  if (hasCommand === hasArgv) {
    throw invalid(
      'command',
      'give exactly one of command (a shell line) or argv (a program and its arguments)',
    );
  }
  if (!hasArgv && (input.args?.length ?? 0) > 0) {
    throw invalid('args', 'only go with argv');
  }
  const argv = [...(input.argv ?? []), ...(input.args ?? [])];
  if ((input.command ?? '').includes('\u0000') || argv.some((a) => a.includes('\u0000'))) {
    throw invalid(hasCommand ? 'command' : 'argv', 'must not contain NUL characters');
  }
  for (const k of input.secretEnv ?? []) {
    if (!(k in (input.env ?? {}))) {
      throw invalid('secret_env', `names ${JSON.stringify(k)}, which is not in env`);
    }
  }
  const commandBytes =
    Buffer.byteLength(input.command ?? '') + argv.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
  if (commandBytes > limits.maxCommandBytes) {
    throw invalid(
      hasCommand ? 'command' : 'argv',
      `is ${commandBytes} bytes; the limit is ${limits.maxCommandBytes}`,
    );
  }
  const env = input.env ?? {};
  let envBytes = 0;
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw invalid('env', `key ${JSON.stringify(k)} is not a valid variable name`);
    }
    if (typeof v !== 'string') {
      throw invalid('env', `${k} must be a string`);
    }
    if (v.includes('\u0000')) {
      throw invalid('env', `${k} must not contain NUL characters`);
    }
    envBytes += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  }
  if (input.runAsUser || input.runAsGroup) {
    const unsafe = firstUnsafeRunAsEnv(Object.keys(env));
    if (unsafe !== undefined) {
      throw invalid(
        'env',
        `${unsafe} is refused with run_as_user/run_as_group: it steers the loader or libc of programs that start as root`,
      );
    }
  }
  if (envBytes > limits.maxEnvBytes) {
    throw invalid('env', `is ${envBytes} bytes; the limit is ${limits.maxEnvBytes}`);
  }
  const stdin = input.stdin ?? new Uint8Array();
  if (stdin.length > limits.maxStdinBytes) {
    throw invalid('stdin', `is ${stdin.length} bytes; the limit is ${limits.maxStdinBytes}`);
  }
  if (input.cwd) {
    checkPath(config, input.cwd, 'cwd');
  }
  const outputLimit = input.outputLimitBytes ?? 0;
  if (2 * outputLimit + REPLY_ENVELOPE_BYTES > config.output.replyMaxBytes) {
    throw invalid(
      'output_limit_bytes',
      `${outputLimit} per stream could not come back: both streams and the envelope must fit LQ_GUEST_REPLY_MAX_BYTES (${config.output.replyMaxBytes})`,
    );
  }
  return create(ExecuteRequestSchema, {
    argv,
    command: input.command ?? '',
    env,
    cwd: input.cwd ?? '',
    stdin,
    timeoutMs,
    runAsUser: input.runAsUser ?? '',
    runAsGroup: input.runAsGroup ?? '',
    includeSupplementaryGroups: input.includeSupplementaryGroups ?? false,
    outputLimitBytes: input.outputLimitBytes ?? 0,
  });
}

/** The audit intent's parameters of an execution: env values and stdin redacted. */
export function executeParams(input: ExecuteInput, request: ExecuteRequest) {
  return redactExecute({ ...input, argv: request.argv });
}

/** Validates and builds an execution with the timeout the caller gave (or `defaultSeconds`). */
export function prepareExecution(input: ExecuteInput, env: SpecEnv, defaultSeconds?: number) {
  const request = executeRequest(
    input,
    env.config,
    env.timeoutMs(input.timeoutSeconds, defaultSeconds),
  );
  return { request, params: executeParams(input, request) };
}

/** Runs a command in the guest and waits for its end (guest.exec and the run-as limits). */
export const EXECUTE: GuestOperationSpec<ExecuteInput, ExecuteResponse> = {
  name: 'execute',
  permission: 'guest.exec',
  prepare: (input, env) => {
    const { request, params } = prepareExecution(input, env);
    return {
      params,
      runAsUser: request.runAsUser,
      dispatch: (d) => {
        request.limits = runAsLimitsOf(d.grant);
        // Under the intent's request id: a resend after a NATS failover gets its answer.
        return d.send(
          'execute',
          { case: 'execute', value: request },
          request.timeoutMs + EXEC_REPLY_MARGIN_MS,
          d.requestId,
        );
      },
      outcome: (r) => executeOutcome(r, env.config.audit.outputMaxBytes),
    };
  },
  connect: connectBinding({
    method: 'executeScript',
    input: (req) => ({ vmId: req.vmId, input: executeInputOf(req) }),
    output: (r, req) => ({
      vmId: req.vmId,
      exitCode: r.exitCode,
      signal: r.signal,
      timedOut: r.timedOut,
      stdout: Buffer.from(r.stdout).toString('utf8'),
      stderr: Buffer.from(r.stderr).toString('utf8'),
      stdoutTruncated: r.stdoutTruncated,
      stderrTruncated: r.stderrTruncated,
      durationMs: r.durationMs,
      stdoutBytes: r.stdout,
      stderrBytes: r.stderr,
    }),
  }),
};

/** An ExecuteScriptRequest (Connect, gRPC, and StartExecution's `execute`) as the input. */
export function executeInputOf(req: ExecuteScriptRequest): ExecuteInput {
  return {
    command: req.command,
    argv: req.argv,
    args: req.args,
    env: req.env,
    cwd: req.cwd,
    stdin: req.stdin,
    timeoutSeconds: req.timeoutSeconds || undefined,
    runAsUser: req.runAsUser,
    runAsGroup: req.runAsGroup,
    includeSupplementaryGroups: req.includeSupplementaryGroups,
    outputLimitBytes: req.outputLimitBytes,
    secretEnv: req.secretEnv,
  };
}
