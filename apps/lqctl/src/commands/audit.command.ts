import { bool, parseTime, str, type ParsedCommand } from '../args.js';
import { ApiError, UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { formatDuration } from '../output/progress.js';
import { jsonText, writeTo } from '../output/stream.js';
import { formatDetails, formatTable, type Cell } from '../output/table.js';
import { outputFormat, printOne } from '../output/listing.js';
import { note, type Command } from './context.js';
import type {
  AuditEventView,
  AuditEventsPage,
  AuditExecutionView,
  AuditExecutionsPage,
} from '@lq/api';

/** The filters of GET /api/audit/{events,executions} from the options. */
export function auditQuery(
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
    actor: str(cmd, 'actor'),
    vm_id: str(cmd, 'vm'),
    project: str(cmd, 'project'),
    operation: str(cmd, 'operation'),
    kind: str(cmd, 'kind'),
    outcome: str(cmd, 'outcome'),
    from: from?.toISOString(),
    to: to?.toISOString(),
  };
}

export function parseLimit(
  text: string | undefined,
  fallback: number | undefined,
): number | undefined {
  if (text === undefined) {
    return fallback;
  }
  if (!/^[1-9]\d{0,8}$/.test(text)) {
    throw new UsageError(`--limit must be a positive whole number (got ${text})`);
  }
  return Number(text);
}

type EventRow = Pick<
  AuditEventView,
  'seq' | 'at' | 'kind' | 'actor' | 'vm_id' | 'operation' | 'status' | 'exit_code' | 'error'
>;

type ExecutionRow = Pick<
  AuditExecutionView,
  | 'seq'
  | 'request_id'
  | 'started_at'
  | 'actor'
  | 'vm_id'
  | 'command'
  | 'argv'
  | 'run_as_user'
  | 'status'
  | 'exit_code'
  | 'duration_ms'
>;

/** "2026-11-03 14:02:11" from an ISO time (UTC, as stored). */
function when(iso: string | null | undefined): string | undefined {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : undefined;
}

/** argv as a shell would need it typed. */
export function shellQuote(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(' ');
}

export function eventsTable(rows: readonly EventRow[]): string {
  return formatTable(
    [
      { header: 'SEQ', align: 'right' },
      { header: 'AT (UTC)' },
      { header: 'KIND' },
      { header: 'ACTOR' },
      { header: 'VM' },
      { header: 'OPERATION' },
      { header: 'STATUS' },
      { header: 'EXIT', align: 'right' },
      { header: 'ERROR', max: 50 },
    ],
    rows.map((r): Cell[] => [
      r.seq,
      when(r.at),
      r.kind,
      r.actor,
      r.vm_id,
      r.operation,
      r.status,
      r.exit_code,
      r.error,
    ]),
  );
}

export function executionsTable(rows: readonly ExecutionRow[]): string {
  return formatTable(
    [
      { header: 'SEQ', align: 'right' },
      { header: 'STARTED (UTC)' },
      { header: 'ACTOR' },
      { header: 'VM' },
      { header: 'AS' },
      { header: 'COMMAND', max: 50 },
      { header: 'STATUS' },
      { header: 'EXIT', align: 'right' },
      { header: 'TOOK', align: 'right' },
    ],
    rows.map((r): Cell[] => [
      r.seq,
      when(r.started_at),
      r.actor,
      r.vm_id,
      r.run_as_user,
      r.command ?? (r.argv ? shellQuote(r.argv) : undefined),
      r.status ?? 'running',
      r.exit_code,
      r.duration_ms === null ? undefined : formatDuration(r.duration_ms),
    ]),
  );
}

/** GET /api/audit/events or /executions: the rows under the list's name. */
type AuditPage = Partial<
  Pick<AuditEventsPage, 'events'> & Pick<AuditExecutionsPage, 'executions'>
> &
  Pick<AuditEventsPage, 'next_cursor'>;

const PAGE_MAX = 1000;
const FORMATS = ['table', 'ndjson', 'csv'] as const;

/**
 * `lqctl audit ls`: the audit trail (or with --executions the command history), newest first.
 * Tables page through the API with its cursor up to --limit; ndjson and csv stream the server's
 * export as it comes.
 */
export const auditLsCommand: Command = async (ctx, cmd) => {
  const format = str(cmd, 'format') ?? 'table';
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format must be table, ndjson or csv (got ${format})`);
  }
  const path = bool(cmd, 'executions') ? '/api/audit/executions' : '/api/audit/events';
  const query = auditQuery(cmd);
  if (format !== 'table') {
    const limit = parseLimit(str(cmd, 'limit'), undefined);
    const res = await ctx.client.request('GET', path, { query: { ...query, format, limit } });
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      await writeTo(ctx.stdout, chunk);
    }
    return Exit.OK;
  }
  const limit = parseLimit(str(cmd, 'limit'), 50)!;
  const name = bool(cmd, 'executions') ? 'executions' : 'events';
  const rows: Array<AuditEventView | AuditExecutionView> = [];
  let cursor: string | undefined;
  let more = false;
  let pageMax = PAGE_MAX;
  while (rows.length < limit) {
    let page: AuditPage;
    try {
      page = await ctx.client.json<AuditPage>('GET', path, {
        query: { ...query, cursor, limit: Math.min(pageMax, limit - rows.length) },
      });
    } catch (err) {
      // A server with a smaller LQ_AUDIT_PAGE_MAX says so: use its page size.
      const m =
        err instanceof ApiError && err.status === 400 ? /at most (\d+)/.exec(err.message) : null;
      if (m && Number(m[1]) < pageMax) {
        pageMax = Number(m[1]);
        continue;
      }
      throw err;
    }
    rows.push(...(page[name] ?? []));
    cursor = page.next_cursor ?? undefined;
    if (cursor === undefined) {
      break;
    }
    more = rows.length >= limit;
  }
  if (ctx.json) {
    await writeTo(ctx.stdout, jsonText(rows));
  } else {
    await writeTo(
      ctx.stdout,
      name === 'executions'
        ? executionsTable(rows as AuditExecutionView[])
        : eventsTable(rows as AuditEventView[]),
    );
    if (more) {
      note(
        ctx,
        `showing the newest ${rows.length}; more may match (raise --limit or narrow the filters)`,
      );
    }
  }
  return Exit.OK;
};

/**
 * `lqctl audit show SEQ`: one audit row in full (every field; params as JSON). The API pages
 * newest first from a cursor, so the row is the first one before SEQ+1.
 */
export const auditShowCommand: Command = async (ctx, cmd) => {
  const seq = cmd.positionals[0]!;
  if (!/^[1-9]\d{0,17}$/.test(seq)) {
    throw new UsageError(`audit show takes an audit row's sequence number (got ${seq})`);
  }
  outputFormat(cmd);
  const page = await ctx.client.json<AuditEventsPage>('GET', '/api/audit/events', {
    query: { cursor: String(BigInt(seq) + 1n), limit: 1 },
  });
  const row = page.events[0];
  if (!row || String(row.seq) !== seq) {
    throw new ApiError(404, 'NOT_FOUND', `no audit row ${seq} you may read`);
  }
  await printOne(
    ctx.stdout,
    cmd,
    row,
    (r) => String(r.seq),
    () =>
      formatDetails(
        Object.entries(row).map(([k, v]): [string, Cell] => [
          k,
          v === null || v === undefined
            ? undefined
            : typeof v === 'object'
              ? JSON.stringify(v)
              : (v as Cell),
        ]),
      ),
  );
  return Exit.OK;
};
