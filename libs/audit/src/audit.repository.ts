import type { KeyObject } from 'node:crypto';
import { DataSource, type QueryRunner } from 'typeorm';
import { CheckpointRepository } from './checkpoint.repository.js';
import { ChainVerifier, type AuditCheckpoint } from './offline/index.js';
import { sha256Hex } from './redaction.js';
import { AuditRowRejected } from './audit-writer.js';
import { filterSql } from './audit-filter.js';
import {
  EVENT_COLUMNS,
  GENESIS_HEAD,
  chainRows,
  numOrNull,
  toView,
  type ChainHead,
  type EventRow,
  type ExecutionRow,
  type OutputCheckRow,
} from './audit-rows.js';
import type {
  AuditEventView,
  AuditFilter,
  AuditRecord,
  ExecutionView,
  VerifyReport,
} from './audit-record.js';

// One advisory lock orders every writer of every replica: the chain has one head.
const CHAIN_LOCK = 0x4c51_4155; // "LQAU"

// The inserts run as data-modifying CTEs of APPEND, beside `ok`: one row when the head is the
// one the rows were chained onto, none otherwise.
const INSERT_EVENTS = `
  INSERT INTO audit_events (${EVENT_COLUMNS}, prev_hash, hash)
  SELECT x.seq, x.at, x.kind, x.request_id, x.actor, x.auth_method, x.source_ip, x.vm_id,
         x.node_id, x.project_id, x.operation, x.params, x.status, x.exit_code, x.duration_ms,
         x.error, x.stdout_sha256, x.stdout_bytes, x.stderr_sha256, x.stderr_bytes,
         decode(x.prev_hash, 'hex'), decode(x.hash, 'hex')
  FROM jsonb_to_recordset($1::jsonb) AS x(
    seq bigint, at timestamptz, kind text, request_id uuid, actor text, auth_method text,
    source_ip text, vm_id text, node_id text, project_id text, operation text, params jsonb,
    status text, exit_code integer, duration_ms integer, error text, stdout_sha256 text,
    stdout_bytes bigint, stderr_sha256 text, stderr_bytes bigint, prev_hash text, hash text)
  WHERE EXISTS (SELECT 1 FROM ok)
  RETURNING 1`;

const INSERT_OUTPUTS = `
  INSERT INTO audit_outputs (request_id, stdout, stderr, stdout_truncated, stderr_truncated)
  SELECT x.request_id, decode(x.stdout, 'base64'), decode(x.stderr, 'base64'),
         x.stdout_truncated, x.stderr_truncated
  FROM jsonb_to_recordset($2::jsonb) AS x(
    request_id uuid, stdout text, stderr text, stdout_truncated boolean, stderr_truncated boolean)
  WHERE EXISTS (SELECT 1 FROM ok)
  ON CONFLICT (request_id) DO NOTHING`;

/**
 * The start of every append statement: `ok` holds one row when the chain's head is the one the
 * rows were chained onto (its seq and hash in parameters $seq and $hash), and the chain lock is
 * taken before any row is inserted; the inserts are conditional on it.
 */
function chainedOnto(seq: number, hash: number): string {
  return `WITH head AS (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1),
       ok AS (SELECT 1 FROM (SELECT pg_advisory_xact_lock(${CHAIN_LOCK})) AS lock
              WHERE COALESCE((SELECT seq FROM head), 0) = $${seq}::bigint
                AND (SELECT hash FROM head) IS NOT DISTINCT FROM $${hash}::bytea),`;
}

// One statement: the lock (taken before any row is inserted), the check that the rows were
// chained onto the head, both inserts; n is the number of events inserted (0: not the head).
const APPEND = `
  ${chainedOnto(3, 4)}
       events AS (${INSERT_EVENTS}),
       outputs AS (${INSERT_OUTPUTS})
  SELECT count(*)::int AS n FROM events`;

// APPEND for rows without output (a batch of intents and most outcomes): the output insert, with
// nothing to insert, cost up to a fifth of the statement's time and CPU in PostgreSQL.
const APPEND_EVENTS = `
  ${chainedOnto(2, 3)}
       events AS (${INSERT_EVENTS})
  SELECT count(*)::int AS n FROM events`;

// APPEND for the usual append, one row without output (a synchronous operation's intent or
// outcome when the writer has nothing else queued): its columns as parameters, no JSON array to
// build and parse and no output insert to run. About 0.1 ms of latency and 15-25% of
// PostgreSQL's CPU per row less than APPEND, measured alone on the benchmark machine.
const APPEND_ONE = `
  ${chainedOnto(23, 24)}
       events AS (
         INSERT INTO audit_events (${EVENT_COLUMNS}, prev_hash, hash)
         SELECT $1::bigint, $2::timestamptz, $3::text, $4::uuid, $5::text, $6::text, $7::text,
                $8::text, $9::text, $10::text, $11::text, $12::jsonb, $13::text, $14::integer,
                $15::integer, $16::text, $17::text, $18::bigint, $19::text, $20::bigint,
                decode($21::text, 'hex'), decode($22::text, 'hex')
         WHERE EXISTS (SELECT 1 FROM ok)
         RETURNING 1)
  SELECT count(*)::int AS n FROM events`;

const UNIQUE_VIOLATION = '23505';
/** Most outcomes the command history's outcome filter reads before walking the intents. */
const OUTCOME_SCAN_MAX_ROWS = 65_536;
/** The sequence key: another writer appended first (the chain head moved). */
const SEQ_KEY = 'audit_events_pkey';
/** One outcome row per request id (migration AuditOneOutcomePerRequest). */
export const OUTCOME_ONCE_INDEX = 'audit_events_one_outcome_idx';

/**
 * The store's refusal of a row for what it holds — data exceptions (class 22: a value it cannot
 * take), program limits (54: a row too large) and integrity constraints (23) but the sequence
 * key — as opposed to the store being away; undefined for anything else.
 */
export function rowRejection(err: unknown): AuditRowRejected | undefined {
  const e = err as { code?: unknown; constraint?: unknown; message?: unknown };
  if (typeof e?.code !== 'string' || !/^(22|23|54)/.test(e.code)) {
    return undefined;
  }
  if (e.code === UNIQUE_VIOLATION && e.constraint === SEQ_KEY) {
    return undefined;
  }
  return new AuditRowRejected(
    String(e.message),
    e.code,
    e.code === UNIQUE_VIOLATION && e.constraint === OUTCOME_ONCE_INDEX,
  );
}

export interface VerifyOptions {
  /** The public keys checkpoints may be signed with, by key id; none: checkpoints are ignored. */
  keys?: ReadonlyMap<string, KeyObject>;
  /** Checkpoints kept outside the table (the JetStream stream's latest). */
  external?: Array<{ checkpoint: AuditCheckpoint; source: string }>;
  /** Called after each page: rows verified so far and the last seq. */
  onProgress?: (rows: number, lastSeq: number | null) => void;
  /** Rows per query (memory is one page). */
  pageSize?: number;
}

/** The part of the pg client the writer uses. */
interface SqlClient {
  query<T = unknown>(
    query: string | { name: string; text: string; values: unknown[] },
    values?: unknown[],
  ): Promise<T>;
}

/** A pg client as the pool hands it out: queries, and its error events. */
type PoolClient = SqlClient & {
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeListener(event: 'error', listener: (err: Error) => void): unknown;
};

/** A pool connection the appends use (one at a time: `busy`). */
interface HeldConnection {
  qr: QueryRunner;
  client: PoolClient;
  busy: boolean;
  /** A query on it failed, or it did: it goes back to the pool rather than being kept. */
  broken: boolean;
  released?: boolean;
  onError: (err: Error) => void;
}

type HeadResults = Array<{ rows: Array<{ seq: string; hash: Buffer; at: Date }> }>;

/** The audit tables: append (under the chain lock), query, verify. */
export class AuditRepository {
  /** The chain head as this writer last saw it (undefined: not known yet). */
  private head: ChainHead | undefined;

  /** Called after each committed append with the head's seq (the checkpointer listens). */
  onAppended: ((seq: number) => void) | undefined;

  /** The connection appends use while they keep coming (see connection()). */
  private held: HeldConnection | undefined;
  private holdTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ds: DataSource,
    /** How long the writer's connection is kept after an append before it goes back. */
    private readonly holdMs = 250,
  ) {}

  /**
   * Appends records in order, atomically, under the chain lock: each gets the next sequence
   * number, a time that never goes back, and its hash over the previous row's.
   *
   * One round trip in the usual case: the rows are chained onto the head this writer last saw,
   * and one prepared statement takes the lock and inserts them only if that head is the table's
   * head. Its snapshot may predate the lock, so a row another writer (a replica) committed just
   * before is either seen (nothing is inserted) or makes the insert fail on the sequence key:
   * the chain never forks. Then the rows are chained again the slow way, with the head read
   * after the lock is held.
   */
  async append(records: AuditRecord[], now = new Date()): Promise<void> {
    if (records.length === 0) {
      return;
    }
    const conn = await this.connection();
    try {
      if (
        this.head !== undefined &&
        (await this.appendOnto(conn.client, this.head, records, now))
      ) {
        this.onAppended?.(this.head.seq);
        return;
      }
      await this.appendLocked(conn.client, records, now);
      this.onAppended?.(this.head!.seq);
    } catch (err) {
      this.head = undefined;
      // A connection that failed is not kept: the next append takes a fresh one.
      conn.broken = true;
      throw rowRejection(err) ?? err;
    } finally {
      this.done(conn);
    }
  }

  /**
   * The writer's connection: the one held since the last append while appends keep coming (the
   * ordered writer makes one at a time), else one from the pool. Taking and giving back a pool
   * connection (TypeORM's query runner) for every append cost about 0.1 ms of CPU each, twice
   * per guest operation.
   */
  private async connection(): Promise<HeldConnection> {
    const held = this.held;
    if (held && !held.busy && !held.broken) {
      held.busy = true;
      return held;
    }
    const qr = this.ds.createQueryRunner();
    const client = (await qr.connect()) as PoolClient;
    const conn: HeldConnection = {
      qr,
      client,
      busy: true,
      broken: false,
      // A connection held between appends that the server ends (a restart, a terminated
      // backend) is given back as soon as its client says so, so the next append does not
      // fail on it (TypeORM's query runner has already released it to the pool by then).
      onError: () => {
        conn.broken = true;
        if (!conn.busy) {
          this.giveBack(conn);
        }
      },
    };
    client.on('error', conn.onError);
    if (!this.held) {
      this.held = conn;
    }
    return conn;
  }

  /** An append ended: its connection is kept a while for the next (or given back). */
  private done(conn: HeldConnection): void {
    conn.busy = false;
    if (conn === this.held && !conn.broken && this.holdMs > 0) {
      if (this.holdTimer) {
        this.holdTimer.refresh();
      } else {
        this.holdTimer = setTimeout(() => this.releaseHeld(), this.holdMs);
        this.holdTimer.unref();
      }
      return;
    }
    this.giveBack(conn);
  }

  /** Gives the held connection back to the pool (idle, or the store is closing). */
  releaseHeld(): void {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    if (this.held && !this.held.busy) {
      this.giveBack(this.held);
    }
  }

  /** Returns a connection to the pool (which drops it when it failed). */
  private giveBack(conn: HeldConnection): void {
    if (conn === this.held) {
      this.held = undefined;
    }
    if (conn.released) {
      return;
    }
    conn.released = true;
    conn.client.removeListener('error', conn.onError);
    void conn.qr.release().catch(() => undefined);
  }

  /** The fast path: false (nothing written) when `head` was not the head. */
  private async appendOnto(
    client: SqlClient,
    head: ChainHead,
    records: AuditRecord[],
    now: Date,
  ): Promise<boolean> {
    const { events, outputs, last } = chainRows(records, head, now);
    let result: { rows: Array<{ n: number }> };
    try {
      const e = events[0]!;
      result = await client.query<typeof result>(
        events.length === 1 && outputs.length === 0
          ? {
              name: 'lq_audit_append_one',
              text: APPEND_ONE,
              values: [
                e.seq,
                e.at,
                e.kind,
                e.request_id,
                e.actor,
                e.auth_method,
                e.source_ip,
                e.vm_id,
                e.node_id,
                e.project_id,
                e.operation,
                JSON.stringify(e.params),
                e.status,
                e.exit_code,
                e.duration_ms,
                e.error,
                e.stdout_sha256,
                e.stdout_bytes,
                e.stderr_sha256,
                e.stderr_bytes,
                e.prev_hash,
                e.hash,
                head.seq,
                head.seq === 0 ? null : head.hash,
              ],
            }
          : outputs.length === 0
            ? {
                name: 'lq_audit_append_events',
                text: APPEND_EVENTS,
                values: [JSON.stringify(events), head.seq, head.seq === 0 ? null : head.hash],
              }
            : {
                name: 'lq_audit_append',
                text: APPEND,
                values: [
                  JSON.stringify(events),
                  JSON.stringify(outputs),
                  head.seq,
                  head.seq === 0 ? null : head.hash,
                ],
              },
      );
    } catch (err) {
      const e = err as { code?: string; constraint?: string };
      if (e.code === UNIQUE_VIOLATION && e.constraint === SEQ_KEY) {
        return false;
      }
      throw err;
    }
    if (result.rows[0]?.n !== events.length) {
      return false;
    }
    this.head = last;
    return true;
  }

  /** The slow path: the head is read with the lock held, so the insert cannot miss. */
  private async appendLocked(client: SqlClient, records: AuditRecord[], now: Date) {
    let open = false;
    try {
      open = true;
      // The lock and the head in one round trip (a multi-statement simple query; under READ
      // COMMITTED the SELECT's snapshot is taken after the lock is held).
      const results = await client.query<HeadResults>(
        `BEGIN; SELECT pg_advisory_xact_lock(${CHAIN_LOCK});
         SELECT seq, hash, at FROM audit_events ORDER BY seq DESC LIMIT 1`,
      );
      const row = results[2]?.rows[0];
      const head = row
        ? { seq: Number(row.seq), hash: row.hash, at: row.at.getTime() }
        : GENESIS_HEAD;
      if (!(await this.appendOnto(client, head, records, now))) {
        throw new Error('audit chain head moved while the chain lock was held');
      }
      await client.query('COMMIT');
      open = false;
    } catch (err) {
      if (open) {
        await client.query('ROLLBACK').catch(() => undefined);
      }
      throw err;
    }
  }

  async events(f: AuditFilter): Promise<AuditEventView[]> {
    const params: unknown[] = [];
    const where = filterSql(f, 'e', params);
    params.push(f.limit);
    const rows = await this.ds.query<EventRow[]>(
      `SELECT ${EVENT_COLUMNS.replace(/(\w+)/g, 'e.$1')} FROM audit_events e
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY e.seq DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toView);
  }

  async executions(f: AuditFilter): Promise<ExecutionView[]> {
    if (f.outcome !== undefined) {
      const found = await this.executionsByOutcome(f);
      if (found) {
        return found.map(toExecutionView);
      }
    }
    const params: unknown[] = [];
    const where = [
      `i.kind = 'intent'`,
      `i.operation = 'execute'`,
      ...filterSql({ ...f, operation: undefined, kind: undefined }, 'i', params, 'o'),
    ];
    params.push(f.limit);
    // Without an outcome filter the page is chosen among the intents alone (one index scan that
    // stops at the limit), and only its rows are joined to their outcome and output: the joins
    // are one-to-one, so the page is the same, but the planner can no longer join a VM's or a
    // user's whole history (or read audit_outputs through) before it sorts and cuts.
    const intents =
      f.outcome === undefined
        ? `(SELECT * FROM audit_events i WHERE ${where.join(' AND ')}
            ORDER BY i.seq DESC LIMIT $${params.length}) i`
        : 'audit_events i';
    const rows = await this.ds.query<ExecutionRow[]>(
      `SELECT i.seq, i.request_id, i.at AS started_at, o.at AS ended_at, i.actor, i.auth_method,
              i.source_ip, i.vm_id, i.node_id, i.project_id, i.params, o.status, o.exit_code,
              o.duration_ms, o.error, o.stdout_sha256, o.stdout_bytes, o.stderr_sha256,
              o.stderr_bytes, o.params AS outcome_params, out.stdout, out.stderr,
              out.stdout_truncated, out.stderr_truncated
       FROM ${intents}
       LEFT JOIN LATERAL (
         SELECT * FROM audit_events x
         WHERE x.request_id = i.request_id AND x.kind = 'outcome' LIMIT 1) o ON true
       LEFT JOIN audit_outputs out ON out.request_id = i.request_id
       ${f.outcome === undefined ? '' : `WHERE ${where.join(' AND ')}`}
       ORDER BY i.seq DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toExecutionView);
  }

  /**
   * The command history filtered by outcome, chosen from the outcomes: an outcome always comes
   * after its intent, so taking matching outcomes newest first and their intents, the page
   * (newest intents first) is exact once its last intent is newer than the oldest outcome
   * looked at (any outcome older than that has an older intent) or every match was looked at.
   * A filter that few executions match (`failed`, often none) reads those few rows, where a
   * walk of the intents would probe every execution's outcome. Undefined after
   * OUTCOME_SCAN_MAX_ROWS outcomes without an exact page: the intents' walk answers then.
   */
  private async executionsByOutcome(f: AuditFilter): Promise<ExecutionRow[] | undefined> {
    for (let scan = Math.max(f.limit * 2, 64); ; scan *= 4) {
      const params: unknown[] = [];
      const { outcome, beforeSeq, from, to, ...same } = f;
      // The outcome carries its intent's actor, VM and project: they narrow both sides. A time
      // range or cursor is the intent's; `from` also bounds the outcomes (they come later).
      const onOutcome = [
        `o.kind = 'outcome'`,
        `o.operation = 'execute'`,
        ...filterSql(
          { ...same, outcome, from, operation: undefined, kind: undefined },
          'o',
          params,
        ),
      ];
      params.push(scan);
      const scanParam = `$${params.length}`;
      const onIntent = [
        `i.kind = 'intent'`,
        `i.operation = 'execute'`,
        ...filterSql(
          { ...same, from, to, beforeSeq, operation: undefined, kind: undefined },
          'i',
          params,
        ),
      ];
      params.push(f.limit);
      const rows = await this.ds.query<Array<ExecutionRow & { floor: string; looked: number }>>(
        `WITH o AS (SELECT * FROM audit_events o WHERE ${onOutcome.join(' AND ')}
                    ORDER BY o.seq DESC LIMIT ${scanParam})
         SELECT i.seq, i.request_id, i.at AS started_at, o.at AS ended_at, i.actor, i.auth_method,
                i.source_ip, i.vm_id, i.node_id, i.project_id, i.params, o.status, o.exit_code,
                o.duration_ms, o.error, o.stdout_sha256, o.stdout_bytes, o.stderr_sha256,
                o.stderr_bytes, o.params AS outcome_params, out.stdout, out.stderr,
                out.stdout_truncated, out.stderr_truncated,
                (SELECT min(seq) FROM o)::text AS floor, (SELECT count(*) FROM o)::int AS looked
         FROM o JOIN audit_events i ON i.request_id = o.request_id
         LEFT JOIN audit_outputs out ON out.request_id = i.request_id
         WHERE ${onIntent.join(' AND ')}
         ORDER BY i.seq DESC LIMIT $${params.length}`,
        params,
      );
      const looked = rows[0]?.looked;
      const complete =
        rows.length === 0
          ? // No intent matched: exact only when every matching outcome was looked at.
            (await this.countOutcomes(f, scan)) < scan
          : looked! < scan ||
            (rows.length === f.limit &&
              Number(rows[rows.length - 1]!.seq) > Number(rows[0]!.floor));
      if (complete) {
        return rows;
      }
      if (scan >= OUTCOME_SCAN_MAX_ROWS) {
        return undefined;
      }
    }
  }

  /** How many outcomes match `f`'s outcome filter, counting up to `upTo`. */
  private async countOutcomes(f: AuditFilter, upTo: number): Promise<number> {
    const params: unknown[] = [];
    const { outcome, from, actor, vmId, projectId, projects } = f;
    const where = [
      `o.kind = 'outcome'`,
      `o.operation = 'execute'`,
      ...filterSql({ outcome, from, actor, vmId, projectId, projects, limit: 0 }, 'o', params),
    ];
    params.push(upTo);
    const r = await this.ds.query<Array<{ n: number }>>(
      `SELECT count(*)::int AS n FROM (SELECT 1 FROM audit_events o WHERE ${where.join(' AND ')}
                                       LIMIT $${params.length}) x`,
      params,
    );
    // count(*) answers one row; none only from a stand-in that explains the query instead.
    return r[0]?.n ?? 0;
  }

  /**
   * Recomputes the chain from the first row, a page at a time (memory: one page): each row's
   * hash over its content and the previous hash, the link to the previous row, gapless
   * sequence numbers, and every signed checkpoint (the table's, and `external` ones such as the
   * JetStream stream's latest) against its row; the table must reach the latest checkpoint, so
   * rows deleted from the end or a rebuilt chain are named. Then checks that every stored output
   * that was kept whole still hashes to what its outcome row recorded (the redacted copy's
   * digest when the row says output was redacted).
   */
  async verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    const started = performance.now();
    const pageSize = options.pageSize ?? 5000;
    const checkpoints = new CheckpointRepository(this.ds);
    const verifier = new ChainVerifier(options.keys ?? new Map());
    for (const { checkpoint, source } of options.external ?? []) {
      verifier.addCheckpoint(checkpoint, source);
    }
    let from = 1;
    let rows = 0;
    for (;;) {
      const page = await checkpoints.rows(from, pageSize);
      const last = page.at(-1);
      if (last) {
        // The table's checkpoints of these rows, before the rows reach them.
        for (let after = from; ;) {
          const cps = await checkpoints.between(after, last.seq, pageSize);
          cps.forEach((c) => verifier.addCheckpoint(c, 'table'));
          if (cps.length < pageSize) {
            break;
          }
          after = cps.at(-1)!.seq + 1;
        }
      }
      page.forEach((r) => verifier.push(r));
      rows += page.length;
      options.onProgress?.(rows, last?.seq ?? null);
      if (page.length < pageSize) {
        // Checkpoints past the last row: a cut-off end.
        const beyond = await checkpoints.between(
          (last?.seq ?? from - 1) + 1,
          Number.MAX_SAFE_INTEGER,
          1000,
        );
        beyond.forEach((c) => verifier.addCheckpoint(c, 'table'));
        break;
      }
      from = last!.seq + 1;
    }
    const chain = verifier.finish();
    const mismatches: string[] = [];
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const page = await this.ds.query<OutputCheckRow[]>(
        `SELECT out.request_id, out.stdout, out.stderr, out.stdout_truncated,
                out.stderr_truncated,
                COALESCE(o.params #>> '{output_redaction,stdout_sha256}', o.stdout_sha256)
                  AS stdout_sha256,
                COALESCE(o.params #>> '{output_redaction,stderr_sha256}', o.stderr_sha256)
                  AS stderr_sha256
         FROM audit_outputs out
         LEFT JOIN audit_events o ON o.request_id = out.request_id AND o.kind = 'outcome'
         WHERE out.request_id > $1 ORDER BY out.request_id LIMIT $2`,
        [after, pageSize],
      );
      for (const o of page) {
        const bad =
          o.stdout_sha256 === null ||
          (!o.stdout_truncated && sha256Hex(o.stdout) !== o.stdout_sha256) ||
          (!o.stderr_truncated && sha256Hex(o.stderr) !== o.stderr_sha256);
        if (bad && mismatches.length < 100) {
          mismatches.push(o.request_id);
        }
        after = o.request_id;
      }
      if (page.length < pageSize) {
        break;
      }
    }
    return {
      ...chain,
      ok: chain.ok && mismatches.length === 0,
      ...(mismatches.length ? { output_mismatches: mismatches } : {}),
      duration_ms: Math.round(performance.now() - started),
    };
  }
}

/** A command-history row as the API shows it. */
function toExecutionView(r: ExecutionRow): ExecutionView {
  const p = (r.params ?? {}) as Record<string, unknown>;
  return {
    seq: Number(r.seq),
    request_id: r.request_id,
    started_at: r.started_at.toISOString(),
    ended_at: r.ended_at?.toISOString() ?? null,
    actor: r.actor,
    auth_method: r.auth_method,
    source_ip: r.source_ip,
    vm_id: r.vm_id,
    node_id: r.node_id,
    project_id: r.project_id,
    command: typeof p.command === 'string' ? p.command : null,
    argv: Array.isArray(p.argv) ? (p.argv as string[]) : null,
    run_as_user: typeof p.run_as_user === 'string' ? p.run_as_user : null,
    run_as_group: typeof p.run_as_group === 'string' ? p.run_as_group : null,
    params: r.params,
    status: r.status,
    exit_code: r.exit_code,
    duration_ms: r.duration_ms,
    error: r.error,
    stdout: r.stdout ? r.stdout.toString('utf8') : null,
    stderr: r.stderr ? r.stderr.toString('utf8') : null,
    stdout_truncated: r.stdout_truncated,
    stderr_truncated: r.stderr_truncated,
    stdout_sha256: r.stdout_sha256,
    stdout_bytes: numOrNull(r.stdout_bytes),
    stderr_sha256: r.stderr_sha256,
    stderr_bytes: numOrNull(r.stderr_bytes),
    output_redaction:
      (r.outcome_params?.output_redaction as ExecutionView['output_redaction']) ?? null,
  };
}
