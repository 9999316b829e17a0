// The operators' history: executions and fleet runs as kubectl lists pods (`exec ls`, `exec
// show`, `exec logs [-f]`, `runs ls`, `runs show [--show-output]`), scoped by the server to what
// the caller's bindings allow.
import { bool, parseTime, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit, exitCodeOfExecution } from '../exit-codes.js';
import { outputFormat, printList, printOne, toYaml, type ListSpec } from '../output/listing.js';
import { formatCounts, formatDuration } from '../output/progress.js';
import { jsonText, writeTo } from '../output/stream.js';
import { formatDetails, type Cell } from '../output/table.js';
import { parseLimit, shellQuote } from './audit.command.js';
import { note, seg, type Command, type Context } from './context.js';
import type {
  ExecutionStatusView,
  ExecutionView,
  OutputChunkView,
  OutputPageView,
  RunSummaryView,
  RunView,
  RunVmView,
} from '@lq/api';

/** "2026-11-03 14:02:11" from an ISO time (UTC). */
function when(iso: string | null | undefined): string | undefined {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : undefined;
}

function commandOf(v: { command: string | null; argv: string[] | null }): string | undefined {
  return v.command ?? (v.argv ? shellQuote(v.argv) : undefined);
}

/** The filters shared by `exec ls` and `runs ls`, as the API's query. */
export function historyQuery(
  cmd: ParsedCommand,
  now = new Date(),
): Record<string, string | undefined> {
  const since = str(cmd, 'since');
  const until = str(cmd, 'until');
  const from = since === undefined ? undefined : parseTime(since, '--since', now);
  const to = until === undefined ? undefined : parseTime(until, '--until', now);
  if (from && to && from > to) {
    throw new UsageError('--since must not be after --until');
  }
  return {
    vm_id: str(cmd, 'vm'),
    project: str(cmd, 'project'),
    state: str(cmd, 'state'),
    actor: str(cmd, 'actor'),
    from: from?.toISOString(),
    to: to?.toISOString(),
  };
}

/** Pages through a listing with its cursor until `limit` rows; `more` when some were left. */
async function pages<T>(
  ctx: Context,
  path: string,
  query: Record<string, string | undefined>,
  limit: number,
  rowsOf: (page: { next_cursor: string | null }) => T[],
): Promise<{ rows: T[]; more: boolean }> {
  const rows: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await ctx.client.json<{ next_cursor: string | null }>('GET', path, {
      query: { ...query, cursor, limit: Math.min(500, limit - rows.length) },
    });
    rows.push(...rowsOf(page));
    cursor = page.next_cursor ?? undefined;
    if (cursor === undefined) {
      return { rows, more: false };
    }
    if (rows.length >= limit) {
      return { rows, more: true };
    }
  }
}

export const EXECUTION_LIST: ListSpec<ExecutionView> = {
  name: (e) => e.id,
  columns: [
    { header: 'ID', cell: (e) => e.id },
    { header: 'VM', cell: (e) => e.vm_id },
    { header: 'PROJECT', cell: (e) => e.project_id, wide: true },
    { header: 'ACTOR', cell: (e) => e.actor },
    { header: 'AS', cell: (e) => e.run_as_user, wide: true },
    { header: 'COMMAND', cell: (e) => commandOf(e), max: 40 },
    { header: 'STATUS', cell: (e) => e.status },
    { header: 'EXIT', cell: (e) => e.exit_code, align: 'right' },
    { header: 'CREATED (UTC)', cell: (e) => when(e.created_at) },
    {
      header: 'TOOK',
      cell: (e) => (e.duration_ms === null ? undefined : formatDuration(e.duration_ms)),
      align: 'right',
    },
    { header: 'RUN', cell: (e) => e.run_id, wide: true },
  ],
};

export const RUN_LIST: ListSpec<RunSummaryView> = {
  name: (r) => r.id,
  columns: [
    { header: 'ID', cell: (r) => r.id },
    { header: 'ACTOR', cell: (r) => r.actor },
    { header: 'TARGET', cell: (r) => targetText(r.target), max: 30 },
    { header: 'COMMAND', cell: (r) => commandOf(r), max: 40 },
    { header: 'STATUS', cell: (r) => r.status },
    { header: 'VMS', cell: (r) => r.vm_count, align: 'right' },
    { header: 'COUNTS', cell: (r) => formatCounts(r.summary), wide: true },
    { header: 'CREATED (UTC)', cell: (r) => when(r.created_at) },
    { header: 'ENDED (UTC)', cell: (r) => when(r.ended_at), wide: true },
  ],
};

function targetText(t: Record<string, unknown>): string {
  if (Array.isArray(t.vm_ids)) {
    return `vms ${(t.vm_ids as string[]).join(',')}`;
  }
  if (typeof t.project === 'string') {
    return `project ${t.project}`;
  }
  const labels = t.labels;
  return typeof labels === 'string'
    ? `labels ${labels}`
    : `labels ${Object.entries((labels ?? {}) as Record<string, string>)
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}`;
}

async function listed<T>(
  ctx: Context,
  cmd: ParsedCommand,
  path: string,
  key: 'executions' | 'runs',
  query: Record<string, string | undefined>,
  spec: ListSpec<T>,
): Promise<number> {
  outputFormat(cmd);
  const limit = parseLimit(str(cmd, 'limit'), 50)!;
  const { rows, more } = await pages<T>(ctx, path, query, limit, (p) => {
    return (p as unknown as Record<string, T[]>)[key] ?? [];
  });
  await printList(ctx.stdout, cmd, rows, spec);
  if (more) {
    note(
      ctx,
      `showing the newest ${rows.length}; more match (raise --limit or narrow the filters)`,
    );
  }
  return Exit.OK;
}

/** `lqctl exec ls`: executions the caller may read, newest first. */
export const execLsCommand: Command = (ctx, cmd) =>
  listed<ExecutionView>(
    ctx,
    cmd,
    '/api/executions',
    'executions',
    { ...historyQuery(cmd), run_id: str(cmd, 'run') },
    EXECUTION_LIST,
  );

/** `lqctl runs ls`: fleet runs, newest first. */
export const runsLsCommand: Command = (ctx, cmd) =>
  listed<RunSummaryView>(ctx, cmd, '/api/runs', 'runs', historyQuery(cmd), RUN_LIST);

export function executionDetails(e: ExecutionStatusView): string {
  const bytes = (n: number | null) => (n === null ? undefined : `${n} bytes`);
  const pairs: Array<[string, Cell]> = [
    ['id', e.id],
    ['vm', e.vm_id],
    ['project', e.project_id],
    ['node', e.node_id],
    ['actor', e.actor],
    ['run as', e.run_as_user],
    ['command', commandOf(e)],
    ['status', e.status],
    ['exit code', e.exit_code],
    ['signal', e.signal],
    ['error', e.error],
    ['created', when(e.created_at)],
    ['started', when(e.started_at)],
    ['ended', when(e.ended_at)],
    ['took', e.duration_ms === null ? undefined : formatDuration(e.duration_ms)],
    ['run', e.run_id],
    ['stdout', bytes(e.stdout_total_bytes)],
    ['stderr', bytes(e.stderr_total_bytes)],
  ];
  return `${formatDetails(pairs)}(lqctl exec logs ${e.id} prints its output)\n`;
}

/** `lqctl exec show ID`: one execution's status, exit code and timings. */
export const execShowCommand: Command = async (ctx, cmd) => {
  const id = cmd.positionals[0]!;
  outputFormat(cmd);
  const view = await ctx.client.json<ExecutionStatusView>('GET', `/api/executions/${seg(id)}`);
  // -o json|yaml: the execution without its output (lqctl exec logs prints that).
  const bare: Partial<ExecutionStatusView> = { ...view };
  delete bare.stdout;
  delete bare.stderr;
  await printOne(
    ctx.stdout,
    cmd,
    bare as ExecutionStatusView,
    (e) => e.id,
    () => executionDetails(view),
  );
  return Exit.OK;
};

async function writeChunk(ctx: Context, c: OutputChunkView): Promise<void> {
  await writeTo(c.stream === 'stderr' ? ctx.stderr : ctx.stdout, c.text);
  if (c.dropped_bytes) {
    note(ctx, `${c.dropped_bytes} bytes of ${c.stream} were dropped (output rate limit)`);
  }
}

/**
 * `lqctl exec logs ID [-f]`: the output stored so far (stdout to stdout, stderr to stderr); with
 * -f, then the live output until the execution ends, exiting with its exit code as exec does.
 */
export const execLogsCommand: Command = async (ctx, cmd) => {
  const id = cmd.positionals[0]!;
  if (str(cmd, 'output') !== undefined) {
    throw new UsageError('exec logs prints the output as it is; -o does not apply (use --json)');
  }
  if (!bool(cmd, 'follow')) {
    let after = 0;
    for (;;) {
      const page = await ctx.client.json<OutputPageView>(
        'GET',
        `/api/executions/${seg(id)}/output`,
        {
          query: { after },
        },
      );
      for (const c of page.chunks) {
        await (ctx.json ? writeTo(ctx.stdout, jsonText(c, false)) : writeChunk(ctx, c));
      }
      if (page.chunks.length === 0 || page.next_after === after) {
        return Exit.OK;
      }
      after = page.next_after;
    }
  }
  let end: ExecutionView | undefined;
  for await (const e of ctx.client.follow(`/api/executions/${seg(id)}/output`, {
    query: (last) => ({ follow: 1, after: last }),
    isEnd: (ev) => ev.event === 'end',
    onReconnect: (why) => note(ctx, `output stream of ${id} broke (${why}); resuming`),
  })) {
    if (e.event === 'output') {
      const c = JSON.parse(e.data) as OutputChunkView;
      await (ctx.json ? writeTo(ctx.stdout, jsonText(c, false)) : writeChunk(ctx, c));
    } else if (e.event === 'end') {
      end = JSON.parse(e.data) as ExecutionView;
    }
  }
  if (!end) {
    throw new Error(`the output stream of ${id} ended without its end event`);
  }
  return exitCodeOfExecution(end);
};

export const RUN_VMS: ListSpec<RunVmView> = {
  name: (v) => v.vm_id,
  columns: [
    { header: 'VM', cell: (v) => v.vm_id },
    { header: 'STATE', cell: (v) => v.state },
    { header: 'EXIT', cell: (v) => v.exit_code, align: 'right' },
    { header: 'EXECUTION', cell: (v) => v.execution_id },
    { header: 'ERROR', cell: (v) => v.error, max: 60 },
  ],
};

export function runDetails(r: RunView): string {
  return formatDetails([
    ['id', r.id],
    ['actor', r.actor],
    ['target', targetText(r.target)],
    ['command', commandOf(r)],
    ['status', r.status],
    ['concurrency', r.max_concurrency],
    ['max errors', r.max_errors],
    ['created', when(r.created_at)],
    ['ended', when(r.ended_at)],
    ['counts', formatCounts(r.summary)],
  ]);
}

/** A VM of a run with its execution's output (SSM's command invocations). */
export interface RunVmOutput extends RunVmView {
  stdout: string | null;
  stderr: string | null;
  output_truncated: boolean;
}

/** Each VM's output, read from its execution (up to the server's inline limit, 1 MiB). */
export async function withOutput(ctx: Context, run: RunView): Promise<RunVmOutput[]> {
  const out: RunVmOutput[] = [];
  const vms = [...run.vms].sort((a, b) =>
    a.vm_id.localeCompare(b.vm_id, undefined, { numeric: true }),
  );
  for (const v of vms) {
    if (v.execution_id === null) {
      out.push({ ...v, stdout: null, stderr: null, output_truncated: false });
      continue;
    }
    const e = await ctx.client.json<ExecutionStatusView>(
      'GET',
      `/api/executions/${seg(v.execution_id)}`,
    );
    out.push({ ...v, stdout: e.stdout, stderr: e.stderr, output_truncated: e.output_truncated });
  }
  return out;
}

/** Each VM's output under a header line naming the VM, its state and exit code. */
export function outputSections(vms: readonly RunVmOutput[]): string {
  return vms
    .map((v) => {
      const head = `=== ${v.vm_id}: ${v.state}${v.exit_code === null ? '' : ` (exit ${v.exit_code})`}`;
      if (v.execution_id === null) {
        return `${head}\n${v.error ? `(not run: ${v.error})\n` : '(not run)\n'}`;
      }
      const body = [v.stdout, v.stderr ? `--- stderr\n${v.stderr}` : '']
        .map((s) => (s && !s.endsWith('\n') ? `${s}\n` : (s ?? '')))
        .join('');
      const cut = v.output_truncated
        ? `(output cut at 1 MiB: lqctl exec logs ${v.execution_id} prints all of it)\n`
        : '';
      return `${head}\n${body}${cut}`;
    })
    .join('\n');
}

/** Prints a run (details, per-VM table, and with `showOutput` each VM's output). */
export async function printRun(
  ctx: Context,
  cmd: ParsedCommand,
  run: RunView,
  showOutput: boolean,
  details = true,
): Promise<void> {
  const f = outputFormat(cmd);
  const vms = showOutput ? await withOutput(ctx, run) : undefined;
  const value = vms ? { ...run, vms } : run;
  if (f === 'json' || f === 'yaml') {
    await writeTo(ctx.stdout, f === 'json' ? jsonText(value) : toYaml(value));
    return;
  }
  if (f === 'name') {
    await writeTo(ctx.stdout, `${run.id}\n`);
    return;
  }
  if (vms) {
    await writeTo(ctx.stdout, outputSections(vms));
    await writeTo(ctx.stdout, '\n');
  }
  if (details) {
    await writeTo(ctx.stdout, runDetails(run));
    await writeTo(ctx.stdout, '\n');
  }
  const sorted = [...run.vms].sort((a, b) =>
    a.vm_id.localeCompare(b.vm_id, undefined, { numeric: true }),
  );
  await printList(ctx.stdout, cmd, sorted, RUN_VMS);
}

/** `lqctl runs show ID [--show-output]`: a run, its VMs, and optionally each VM's output. */
export const runsShowCommand: Command = async (ctx, cmd) => {
  const run = await ctx.client.json<RunView>('GET', `/api/runs/${seg(cmd.positionals[0]!)}`);
  await printRun(ctx, cmd, run, bool(cmd, 'show-output'));
  return Exit.OK;
};
