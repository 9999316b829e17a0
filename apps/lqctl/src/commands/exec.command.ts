import {
  bool,
  list,
  parseKeyValue,
  parseTimeoutSeconds,
  str,
  type ParsedCommand,
} from '../args.js';
import { ApiError, UsageError } from '../errors.js';
import { exitCodeOfExecution } from '../exit-codes.js';
import { refusalExitCode, refusalOf } from '@lq/api';
import { jsonText, writeTo } from '../output/stream.js';
import { cancelOnInterrupt } from './cancel-on-interrupt.js';
import { note, seg, type Command, type Context } from './context.js';
import type {
  ExecuteBody,
  ExecuteResultView,
  ExecutionStartedView,
  ExecutionView,
  OutputChunkView,
} from '@lq/api';

/** The execute fields (snake_case, as POST /api/vms/:id/execute takes them) from the options. */
export function executeBody(cmd: ParsedCommand, what: string): ExecuteBody {
  if (cmd.remote.length === 0) {
    throw new UsageError(`${what} needs a command after --, e.g. lqctl ${what} … -- uname -a`);
  }
  const body: ExecuteBody = bool(cmd, 'shell')
    ? { command: cmd.remote.join(' ') }
    : { argv: cmd.remote };
  const env: Record<string, string> = {};
  for (const kv of list(cmd, 'env')) {
    const [k, v] = parseKeyValue(kv, '--env');
    env[k] = v;
  }
  if (Object.keys(env).length > 0) {
    body.env = env;
  }
  const timeout = str(cmd, 'timeout');
  if (timeout !== undefined) {
    body.timeout_seconds = parseTimeoutSeconds(timeout);
  }
  const optional: Array<[string, 'run_as_user' | 'run_as_group' | 'cwd']> = [
    ['user', 'run_as_user'],
    ['group', 'run_as_group'],
    ['cwd', 'cwd'],
  ];
  for (const [option, field] of optional) {
    const v = str(cmd, option);
    if (v !== undefined) {
      body[field] = v;
    }
  }
  if (bool(cmd, 'supplementary-groups')) {
    body.include_supplementary_groups = true;
  }
  return body;
}

/** Seconds as lqctl's durations read: 3600 → 1h, 5400 → 1h30m, 90 → 1m30s. */
export function formatSeconds(total: number): string {
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || total === 0 ? `${s}s` : ''}`;
}

/**
 * The server's refusal of a timeout, in the terms the caller typed (`--timeout 2h exceeds the
 * server maximum 1h`); anything else as it was.
 */
export function inCallerTerms(err: unknown, cmd: ParsedCommand): Error {
  const typed = str(cmd, 'timeout');
  const m =
    err instanceof ApiError && err.status === 400 && typed !== undefined
      ? /^timeout_seconds \d+ exceeds the maximum (\d+)/.exec(err.message)
      : null;
  return m
    ? new UsageError(`--timeout ${typed} exceeds the server maximum ${formatSeconds(Number(m[1]))}`)
    : err instanceof Error
      ? err
      : new Error(String(err));
}

/** Why the command ended, when the exit code alone does not say it. */
export function endNote(view: ExecutionView): string | undefined {
  if (view.refusal) {
    return `the guest refused to start the command: ${view.error ?? view.refusal} (exit ${exitCodeOfExecution(view)})`;
  }
  switch (view.status) {
    case 'timed_out':
      return `execution ${view.id} timed out; its process group was killed (exit 124)`;
    case 'cancelled':
      return `execution ${view.id} was cancelled (exit 130)`;
    case 'agent_lost':
      return `the guest agent went away during execution ${view.id}${view.error ? `: ${view.error}` : ''} (exit 255)`;
    default:
      break;
  }
  if (view.signal) {
    return `the command was killed by ${view.signal} (exit ${exitCodeOfExecution(view)})`;
  }
  if (view.exit_code === null && view.status !== 'succeeded') {
    return `execution ${view.id} ${view.status}${view.error ? `: ${view.error}` : ''} (exit 255)`;
  }
  return undefined;
}

async function readStdin(ctx: Context): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of ctx.stdin as AsyncIterable<Buffer | string>) {
    parts.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  }
  return Buffer.concat(parts);
}

async function execSync(
  ctx: Context,
  cmd: ParsedCommand,
  vm: string,
  body: ExecuteBody,
): Promise<number> {
  let r: ExecuteResultView;
  try {
    r = await ctx.client.json<ExecuteResultView>('POST', `/api/vms/${seg(vm)}/execute`, {
      json: body,
    });
  } catch (err) {
    // The guest refused to start it: the exit code a shell would give (127, 126, 1).
    const refusal = err instanceof ApiError ? refusalOf(err.agentCode, err.message) : null;
    if (!refusal) {
      throw inCallerTerms(err, cmd);
    }
    const code = refusalExitCode(refusal);
    note(ctx, `the guest refused to start the command: ${(err as Error).message} (exit ${code})`);
    return code;
  }
  if (ctx.json) {
    await writeTo(ctx.stdout, jsonText(r));
  } else {
    await writeTo(ctx.stdout, r.stdout);
    await writeTo(ctx.stderr, r.stderr);
    if (r.stdout_truncated || r.stderr_truncated) {
      note(ctx, 'output truncated by the agent (use the default asynchronous mode for all of it)');
    }
  }
  return exitCodeOfExecution({
    status: r.timed_out ? 'timed_out' : r.exit_code === 0 && !r.signal ? 'succeeded' : 'failed',
    exit_code: r.exit_code,
    signal: r.signal,
  });
}

/**
 * `lqctl exec VM -- CMD…`: starts an execution, follows its output live (stdout to stdout, stderr
 * to stderr, resuming from the last sequence number if the stream breaks) and exits with the
 * remote command's exit code. Ctrl-C cancels it in the guest; a second Ctrl-C stops waiting.
 */
export const execCommand: Command = async (ctx, cmd) => {
  const vm = cmd.positionals[0]!;
  const body = executeBody(cmd, 'exec');
  if (bool(cmd, 'stdin')) {
    body.stdin_base64 = (await readStdin(ctx)).toString('base64');
  }
  if (bool(cmd, 'sync')) {
    return execSync(ctx, cmd, vm, body);
  }

  const interrupt = cancelOnInterrupt(
    ctx,
    'execution',
    (id) => `/api/executions/${seg(id)}/cancel`,
  );
  try {
    const started = await ctx.client
      .json<ExecutionStartedView>('POST', `/api/vms/${seg(vm)}/executions`, { json: body })
      .catch((err: unknown) => {
        throw inCallerTerms(err, cmd);
      });
    const id = started.id;
    if (ctx.json) {
      await writeTo(ctx.stdout, jsonText({ event: 'started', ...started }, false));
    }
    interrupt.started(id);
    let end: ExecutionView | undefined;
    const events = ctx.client.follow(`/api/executions/${seg(id)}/output`, {
      query: (after) => ({ follow: 1, after }),
      isEnd: (e) => e.event === 'end',
      onReconnect: (why) => note(ctx, `output stream of ${id} broke (${why}); resuming`),
    });
    for await (const e of events) {
      if (e.event === 'output') {
        const c = JSON.parse(e.data) as OutputChunkView;
        if (ctx.json) {
          await writeTo(ctx.stdout, jsonText({ event: 'output', ...c }, false));
          continue;
        }
        await writeTo(c.stream === 'stderr' ? ctx.stderr : ctx.stdout, c.text);
        if (c.dropped_bytes) {
          note(ctx, `${c.dropped_bytes} bytes of ${c.stream} were dropped (output rate limit)`);
        }
      } else if (e.event === 'end') {
        end = JSON.parse(e.data) as ExecutionView;
      }
    }
    if (!end) {
      throw new Error(`the output stream of ${id} ended without its end event`);
    }
    if (ctx.json) {
      await writeTo(ctx.stdout, jsonText({ event: 'end', ...end }, false));
    } else {
      const why = endNote(end);
      if (why) {
        note(ctx, why);
      }
    }
    return exitCodeOfExecution(end);
  } finally {
    interrupt.dispose();
  }
};
