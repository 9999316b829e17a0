import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

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
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  async insert(row: {
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
  }): Promise<ExecutionRow> {
    const rows = await this.ds.query<ExecutionRow[]>(
      `INSERT INTO executions (id, vm_id, node_id, project_id, run_id, actor, request, status,
                               timeout_ms, started_at, owner, lease_until, intent)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, now(), $9,
               now() + $10 * interval '1 millisecond', $11)
       RETURNING *`,
      [
        row.id,
        row.vmId,
        row.nodeId,
        row.projectId,
        row.runId ?? null,
        row.actor,
        JSON.stringify(row.request),
        row.timeoutMs,
        row.owner,
        row.leaseMs,
        JSON.stringify(row.intent),
      ],
    );
    return rows[0]!;
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
  async finish(id: string, end: ExecutionEnd): Promise<boolean> {
    const result = await this.ds.query<[unknown[], number]>(
      `UPDATE executions SET status = $2, exit_code = $3, signal = $4, error = $5,
         stdout_total_bytes = $6, stderr_total_bytes = $7, ended_at = now()
       WHERE id = $1 AND status IN ('pending', 'running')`,
      [
        id,
        end.status,
        end.exitCode ?? null,
        end.signal ?? null,
        end.error ?? null,
        end.stdoutTotalBytes ?? null,
        end.stderrTotalBytes ?? null,
      ],
    );
    return (result[1] ?? 0) > 0;
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
