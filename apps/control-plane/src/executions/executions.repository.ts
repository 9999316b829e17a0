import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { StatementBatcher } from '../common/statement-batcher.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';

export const EXECUTION_STATES = [
  'pending',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'agent_lost',
] as const;
export type ExecutionState = (typeof EXECUTION_STATES)[number];
export const FINAL_STATES: ReadonlySet<ExecutionState> = new Set([
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'agent_lost',
]);

export interface ExecutionRow {
  id: string;
  vm_id: string;
  node_id: string;
  project_id: string;
  run_id: string | null;
  actor: string;
  request: Record<string, unknown>;
  status: ExecutionState;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  stdout_total_bytes: string | null;
  stderr_total_bytes: string | null;
  output_stored_bytes: string;
  output_truncated: boolean;
  timeout_ms: number;
  created_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
  /** The replica driving it, and until when (its lease; another adopts it once it ran out). */
  owner: string | null;
  lease_until: Date | null;
  /** Its audit intent's row fields and signed authorization (StoredIntent), for an adopter. */
  intent: Record<string, unknown> | null;
}

/** Where a page of GET /api/executions starts: after this row, newest first. */
export interface HistoryCursor {
  /** created_at as PostgreSQL prints it (microseconds kept, so the page boundary is exact). */
  at: string;
  id: string;
}

/** GET /api/executions's filters, combined with AND. */
export interface ExecutionListFilter {
  /** The projects the caller may read ('all' for every one). */
  projects: 'all' | string[];
  vmId?: string;
  projectId?: string;
  states?: ExecutionState[];
  actor?: string;
  runId?: string;
  from?: Date;
  to?: Date;
  after?: HistoryCursor;
  limit: number;
}

export interface OutputChunk {
  seq: number;
  stream: 'stdout' | 'stderr';
  data: Buffer;
  droppedBytes: number;
  /** Secrets replaced in `data` before it was stored or streamed (LQ_OUTPUT_REDACT_*). */
  redactions?: number;
}

/** An execution as ExecutionsService records it, before it is sent. */
export interface NewExecution {
  id: string;
  vmId: string;
  nodeId: string;
  projectId: string;
  runId?: string;
  actor: string;
  request: Record<string, unknown>;
  timeoutMs: number;
  owner: string;
  leaseMs: number;
  intent: unknown;
}

export interface ExecutionEnd {
  status: ExecutionState;
  exitCode?: number;
  signal?: string;
  error?: string;
  stdoutTotalBytes?: number;
  stderrTotalBytes?: number;
}

/** The audit intent of an asynchronous execution whose row was never recorded. */
export interface UnrecordedIntent {
  request_id: string;
  actor: string;
  auth_method: string;
  source_ip: string;
  vm_id: string;
  node_id: string;
  project_id: string;
  params: Record<string, unknown>;
}

/** The executions and execution_output tables; the only SQL for them. */
@Injectable()
export class ExecutionsRepository {
  /** A fleet run's starts and ends come in bursts: their rows go a batch per statement. */
  private readonly inserts: StatementBatcher<NewExecution, ExecutionRow>;
  private readonly ends: StatementBatcher<{ id: string; end: ExecutionEnd }, boolean>;

  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(CONTROL_PLANE_CONFIG) config: ControlPlaneConfig,
  ) {
    this.inserts = new StatementBatcher((rows) => this.insertRows(rows), config.execBatchRows);
    this.ends = new StatementBatcher((rows) => this.finishRows(rows), config.execBatchRows);
  }

  /**
   * Records a running execution (the claim on its intent); fails with PostgreSQL's unique
   * violation (23505) when a row with its id exists (a sweep recorded it never started).
   */
  insert(row: NewExecution): Promise<ExecutionRow> {
    return this.inserts.push(row);
  }

  private async insertRows(rows: NewExecution[]): Promise<ExecutionRow[]> {
    const written = await this.ds.query<ExecutionRow[]>(
      `INSERT INTO executions (id, vm_id, node_id, project_id, run_id, actor, request, status,
                               timeout_ms, started_at, owner, lease_until, intent)
       SELECT x.id, x.vm_id, x.node_id, x.project_id, x.run_id, x.actor, x.request, 'running',
              x.timeout_ms, now(), x.owner, now() + x.lease_ms * interval '1 millisecond',
              x.intent
       FROM jsonb_to_recordset($1::jsonb) AS x(
         id uuid, vm_id text, node_id text, project_id text, run_id uuid, actor text,
         request jsonb, timeout_ms integer, owner text, lease_ms integer, intent jsonb)
       ON CONFLICT (id) DO NOTHING
       RETURNING *`,
      [
        JSON.stringify(
          rows.map((row) => ({
            id: row.id,
            vm_id: row.vmId,
            node_id: row.nodeId,
            project_id: row.projectId,
            run_id: row.runId ?? null,
            actor: row.actor,
            request: row.request,
            timeout_ms: row.timeoutMs,
            owner: row.owner,
            lease_ms: row.leaseMs,
            intent: row.intent,
          })),
        ),
      ],
    );
    const byId = new Map(written.map((r) => [r.id.toLowerCase(), r]));
    return rows.map((row) => {
      const r = byId.get(row.id.toLowerCase());
      if (!r) {
        // As the single-row INSERT would have failed (ExecutionsService tells it apart).
        throw Object.assign(new Error(`execution ${row.id} is already recorded`), {
          code: '23505',
        });
      }
      return r;
    });
  }

  async get(id: string): Promise<ExecutionRow | undefined> {
    const rows = await this.ds.query<ExecutionRow[]>('SELECT * FROM executions WHERE id = $1', [
      id,
    ]);
    return rows[0];
  }

  /** A page of executions, newest first; each row with the cursor that follows it. */
  async list(f: ExecutionListFilter): Promise<Array<ExecutionRow & { cursor_at: string }>> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: (n: string) => string, value: unknown) => {
      params.push(value);
      where.push(sql(`$${params.length}`));
    };
    if (f.projects !== 'all') {
      add((n) => `project_id = ANY(${n}::text[])`, f.projects);
    }
    if (f.vmId !== undefined) {
      add((n) => `vm_id = ${n}`, f.vmId);
    }
    if (f.projectId !== undefined) {
      add((n) => `project_id = ${n}`, f.projectId);
    }
    if (f.states !== undefined) {
      add((n) => `status = ANY(${n}::text[])`, f.states);
    }
    if (f.actor !== undefined) {
      add((n) => `actor = ${n}`, f.actor);
    }
    if (f.runId !== undefined) {
      add((n) => `run_id = ${n}::uuid`, f.runId);
    }
    if (f.from !== undefined) {
      add((n) => `created_at >= ${n}`, f.from);
    }
    if (f.to !== undefined) {
      add((n) => `created_at <= ${n}`, f.to);
    }
    if (f.after !== undefined) {
      params.push(f.after.at, f.after.id);
      where.push(
        `(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
      );
    }
    params.push(f.limit);
    return this.ds.query(
      `SELECT *, created_at::text AS cursor_at FROM executions
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
  }

  async listByRun(runId: string): Promise<ExecutionRow[]> {
    return this.ds.query<ExecutionRow[]>(
      'SELECT * FROM executions WHERE run_id = $1 ORDER BY vm_id',
      [runId],
    );
  }

  /** Ends a running execution; false when it had already ended (first end wins). */
  /** Records an execution's end: true when this end is the one recorded (the first). */
  finish(id: string, end: ExecutionEnd): Promise<boolean> {
    return this.ends.push({ id, end });
  }

  private async finishRows(rows: Array<{ id: string; end: ExecutionEnd }>): Promise<boolean[]> {
    // Two ends of one execution in a batch: the first is tried, the later lose (as they would
    // one after the other).
    const first = new Map<string, number>();
    rows.forEach((r, i) => first.has(r.id.toLowerCase()) || first.set(r.id.toLowerCase(), i));
    // UPDATE … RETURNING answers [rows, count].
    const [updated] = await this.ds.query<[Array<{ id: string }>, number]>(
      `UPDATE executions e SET status = x.status, exit_code = x.exit_code, signal = x.signal,
         error = x.error, stdout_total_bytes = x.stdout_total_bytes,
         stderr_total_bytes = x.stderr_total_bytes, ended_at = now()
       FROM jsonb_to_recordset($1::jsonb) AS x(
         id uuid, status text, exit_code integer, signal text, error text,
         stdout_total_bytes bigint, stderr_total_bytes bigint)
       WHERE e.id = x.id AND e.status IN ('pending', 'running')
       RETURNING e.id`,
      [
        JSON.stringify(
          [...first.values()].map((i) => {
            const { id, end } = rows[i]!;
            return {
              id,
              status: end.status,
              exit_code: end.exitCode ?? null,
              signal: end.signal ?? null,
              error: end.error ?? null,
              stdout_total_bytes: end.stdoutTotalBytes ?? null,
              stderr_total_bytes: end.stderrTotalBytes ?? null,
            };
          }),
        ),
      ],
    );
    const won = new Set(updated.map((r) => r.id.toLowerCase()));
    return rows.map((r, i) => {
      const id = r.id.toLowerCase();
      return first.get(id) === i && won.has(id);
    });
  }

  /**
   * Stores chunks (a chunk stored before is left as it is) and adds their bytes to the
   * execution's stored total; `truncated` flags that some output was not kept.
   */
  async appendOutput(executionId: string, chunks: OutputChunk[], truncated = false): Promise<void> {
    if (chunks.length === 0 && !truncated) {
      return;
    }
    await this.ds.query(
      `WITH ins AS (
         INSERT INTO execution_output (execution_id, seq, stream, data, dropped_bytes, redactions)
         SELECT $1, x.seq, x.stream, decode(x.data, 'base64'), x.dropped, x.redactions
         FROM jsonb_to_recordset($2::jsonb)
           AS x(seq bigint, stream smallint, data text, dropped bigint, redactions integer)
         ON CONFLICT DO NOTHING
         RETURNING octet_length(data) AS n)
       UPDATE executions
          SET output_stored_bytes = output_stored_bytes + COALESCE((SELECT sum(n) FROM ins), 0),
              output_truncated = output_truncated OR $3
        WHERE id = $1`,
      [
        executionId,
        JSON.stringify(
          chunks.map((c) => ({
            seq: c.seq,
            stream: c.stream === 'stdout' ? 1 : 2,
            data: c.data.toString('base64'),
            dropped: c.droppedBytes,
            redactions: c.redactions ?? 0,
          })),
        ),
        truncated,
      ],
    );
  }

  async output(executionId: string, afterSeq: number, limit: number): Promise<OutputChunk[]> {
    const rows = await this.ds.query<
      Array<{
        seq: string;
        stream: number;
        data: Buffer;
        dropped_bytes: string;
        redactions: number;
      }>
    >(
      `SELECT seq, stream, data, dropped_bytes, redactions FROM execution_output
       WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
      [executionId, afterSeq, limit],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      stream: r.stream === 1 ? 'stdout' : 'stderr',
      data: r.data,
      droppedBytes: Number(r.dropped_bytes),
      redactions: r.redactions,
    }));
  }

  /** Which of these executions have ended. */
  async endedAmong(ids: string[]): Promise<string[]> {
    const rows = await this.ds.query<Array<{ id: string }>>(
      `SELECT id FROM executions WHERE id = ANY($1::uuid[]) AND status NOT IN ('pending', 'running')`,
      [ids],
    );
    return rows.map((r) => r.id);
  }

  /** The end states of those of these executions that have ended. */
  async endedStates(ids: string[]): Promise<Array<{ id: string; status: ExecutionState }>> {
    return this.ds.query(
      `SELECT id, status FROM executions
       WHERE id = ANY($1::uuid[]) AND status NOT IN ('pending', 'running')`,
      [ids],
    );
  }

  /**
   * Running executions whose time is long past and that no live replica holds (no lease, or one
   * that ran out): their control plane stopped before the end and none adopted them.
   */
  async overdue(graceMs: number): Promise<ExecutionRow[]> {
    return this.ds.query<ExecutionRow[]>(
      `SELECT * FROM executions WHERE status IN ('pending', 'running')
         AND started_at + (timeout_ms + $1) * interval '1 millisecond' < now()
         AND (lease_until IS NULL OR lease_until < now())`,
      [graceMs],
    );
  }

  /**
   * Intents of asynchronous executions written after `after` (a time this method returned; a
   * day back when undefined) and more than `olderThanMs` ago, whose execution row was never
   * inserted and that have no outcome: their replica stopped between the intent and the row,
   * so nothing was sent. Also returns the time up to which it looked, for the next call.
   */
  async unrecordedIntents(
    after: string | undefined,
    olderThanMs: number,
    limit: number,
  ): Promise<{ intents: Array<UnrecordedIntent & { at: string }>; upTo: string }> {
    const bound = await this.ds.query<Array<{ up_to: string }>>(
      `SELECT (now() - $1 * interval '1 millisecond')::text AS up_to`,
      [olderThanMs],
    );
    const upTo = bound[0]!.up_to;
    // The execution's id is its intent's request id (ExecutionsService.start).
    const intents = await this.ds.query<Array<UnrecordedIntent & { at: string }>>(
      `SELECT i.request_id, i.actor, i.auth_method, i.source_ip, i.vm_id, i.node_id,
              i.project_id, i.params, i.at::text AS at
       FROM audit_events i
       WHERE i.at > COALESCE($1::timestamptz, now() - interval '1 day') AND i.at <= $2::timestamptz
         AND i.kind = 'intent' AND i.operation = 'execute' AND i.params->>'async' = 'true'
         AND i.vm_id IS NOT NULL AND i.node_id IS NOT NULL AND i.project_id IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.id = i.request_id)
         AND NOT EXISTS (SELECT 1 FROM audit_events o
                         WHERE o.kind = 'outcome' AND o.request_id = i.request_id)
       ORDER BY i.at LIMIT $3`,
      [after ?? null, upTo, limit],
    );
    return { intents, upTo };
  }

  /**
   * Records an execution that never started, `failed` with `error`, under its intent's id: the
   * row is the claim on its outcome. False when its row exists already (its replica recorded it
   * after all, or another replica closed it first): then this caller writes no outcome.
   */
  async insertNeverStarted(intent: UnrecordedIntent, error: string): Promise<boolean> {
    // No run_id: a fleet run that adopts the run finds the VM still queued and starts it.
    const rows = await this.ds.query<Array<{ id: string }>>(
      `INSERT INTO executions (id, vm_id, node_id, project_id, actor, request, status, error,
                               timeout_ms, ended_at)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb - 'authorization', 'failed', $7, 0, now())
       ON CONFLICT (id) DO NOTHING
       RETURNING id`,
      [
        intent.request_id,
        intent.vm_id,
        intent.node_id,
        intent.project_id,
        intent.actor,
        JSON.stringify(intent.params),
        error,
      ],
    );
    return rows.length > 0;
  }

  /** Extends the leases `owner` holds on these running executions. */
  async renew(owner: string, ids: string[], leaseMs: number): Promise<void> {
    await this.ds.query(
      `UPDATE executions SET lease_until = now() + $3 * interval '1 millisecond'
       WHERE id = ANY($2::uuid[]) AND owner = $1 AND status IN ('pending', 'running')`,
      [owner, ids, leaseMs],
    );
  }

  /** Lets another replica adopt what `owner` drives at once (a clean shutdown). */
  async release(owner: string): Promise<void> {
    await this.ds.query(
      `UPDATE executions SET lease_until = now() - interval '1 millisecond'
       WHERE owner = $1 AND status IN ('pending', 'running')`,
      [owner],
    );
  }

  /**
   * Takes over up to `limit` running executions whose lease ran out (their replica died): each
   * goes to exactly one replica (the row lock, and the lease checked again by the UPDATE).
   */
  async adoptExpired(owner: string, leaseMs: number, limit: number): Promise<ExecutionRow[]> {
    // An UPDATE answers [rows, count] through TypeORM.
    const [rows] = await this.ds.query<[ExecutionRow[], number]>(
      `UPDATE executions SET owner = $1, lease_until = now() + $2 * interval '1 millisecond'
       WHERE id IN (SELECT id FROM executions
                    WHERE status IN ('pending', 'running') AND lease_until IS NOT NULL
                      AND lease_until < now() AND intent IS NOT NULL
                    ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED)
         AND lease_until < now() AND status IN ('pending', 'running')
       RETURNING *`,
      [owner, leaseMs, limit],
    );
    return rows;
  }
}
