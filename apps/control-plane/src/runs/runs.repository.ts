import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { StatementBatcher } from '../common/statement-batcher.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';

export interface TargetVm {
  id: string;
  project_id: string;
  node_id: string;
  agent_state: string;
}

export type RunState = 'running' | 'succeeded' | 'failed' | 'stopped' | 'cancelled';
export type TargetState = 'queued' | 'denied' | 'skipped' | 'started' | 'failed_to_start';

export interface RunRow {
  id: string;
  actor: string;
  target: Record<string, unknown>;
  request: Record<string, unknown>;
  max_concurrency: number;
  max_errors: number | null;
  status: RunState;
  created_at: Date;
  ended_at: Date | null;
  /** The replica driving it, and until when (another adopts it once its lease ran out). */
  owner?: string | null;
  lease_until?: Date | null;
  /** Who started it ({principal, requestId, sourceIp}): the authority an adopter acts with. */
  caller?: Record<string, unknown> | null;
  /** Its input without stdin or env values; null when it had some (not resumable). */
  input?: Record<string, unknown> | null;
}

/** A target of a run being adopted, with its VM's location and its execution's state. */
export interface ResumeTargetRow {
  vm_id: string;
  state: TargetState;
  execution_id: string | null;
  execution_status: string | null;
  /** An execution of this run on this VM the target does not name yet (its start was cut). */
  started_execution_id: string | null;
  started_execution_status: string | null;
  project_id: string | null;
  node_id: string | null;
  agent_state: string | null;
}

export interface RunTargetRow {
  vm_id: string;
  state: TargetState;
  execution_id: string | null;
  error: string | null;
  execution_status: string | null;
  exit_code: number | null;
}

/** GET /api/runs's filters, combined with AND. */
/** The audit intent of a fleet run whose row was never recorded. */
export interface UnrecordedRunIntent {
  request_id: string;
  actor: string;
  auth_method: string;
  source_ip: string;
  params: Record<string, unknown> & { run_id: string };
  at: string;
}

export interface RunListFilter {
  /** Only runs of this actor (a caller without a global audit.read or admin binding). */
  onlyActor?: string;
  actor?: string;
  /** Runs that targeted this VM. */
  vmId?: string;
  /** Runs that targeted a VM of this project. */
  projectId?: string;
  states?: RunState[];
  from?: Date;
  to?: Date;
  after?: { at: string; id: string };
  limit: number;
}

/** runs, run_targets and VM labels; the only SQL for them. */
@Injectable()
export class RunsRepository {
  /** A run's starts come in bursts: their targets' rows go a batch per statement. */
  private readonly starts: StatementBatcher<
    { runId: string; vmId: string; executionId: string },
    void
  >;

  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    @Inject(CONTROL_PLANE_CONFIG) config: ControlPlaneConfig,
  ) {
    this.starts = new StatementBatcher((rows) => this.startedRows(rows), config.execBatchRows);
  }

  /**
   * The VMs a target names (ids that exist, a project's, or those whose labels match), among
   * the projects `visible` ('all', or a list): a VM the caller cannot see is as good as absent.
   */
  async resolve(
    target: {
      vmIds?: string[];
      project?: string;
      labels?: Record<string, string>;
    },
    visible: 'all' | string[],
  ): Promise<TargetVm[]> {
    const columns = 'id, project_id, node_id, agent_state';
    const scope = visible === 'all' ? 'TRUE' : 'project_id = ANY($2::text[])';
    const scopeParam = visible === 'all' ? [] : [visible];
    let where: string;
    let param: unknown;
    if (target.vmIds) {
      where = 'id = ANY($1::text[])';
      param = target.vmIds;
    } else if (target.project !== undefined) {
      where = 'project_id = $1';
      param = target.project;
    } else {
      where = 'labels @> $1::jsonb';
      param = JSON.stringify(target.labels ?? {});
    }
    return this.ds.query<TargetVm[]>(
      `SELECT ${columns} FROM vms WHERE ${where} AND ${scope} AND agent_state <> 'gone' ORDER BY id`,
      [param, ...scopeParam],
    );
  }

  async insert(
    run: Omit<RunRow, 'created_at' | 'ended_at' | 'status' | 'owner' | 'lease_until'> & {
      owner: string;
      leaseMs: number;
    },
    vmIds: string[],
  ): Promise<void> {
    await this.ds.transaction(async (m) => {
      await m.query(
        `INSERT INTO runs (id, actor, target, request, max_concurrency, max_errors, status,
                           owner, lease_until, caller, input)
         VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, now() + $8 * interval '1 millisecond',
                 $9, $10)`,
        [
          run.id,
          run.actor,
          JSON.stringify(run.target),
          JSON.stringify(run.request),
          run.max_concurrency,
          run.max_errors,
          run.owner,
          run.leaseMs,
          run.caller === undefined ? null : JSON.stringify(run.caller),
          run.input === undefined || run.input === null ? null : JSON.stringify(run.input),
        ],
      );
      await m.query(
        `INSERT INTO run_targets (run_id, vm_id, state) SELECT $1, unnest($2::text[]), 'queued'`,
        [run.id, vmIds],
      );
    });
  }

  /**
   * Intents of fleet runs written after `after` (a time this method returned; a day back when
   * undefined) and more than `olderThanMs` ago, whose run row was never inserted and that have
   * no outcome: their replica stopped between the intent and the row (RunsService.create), so
   * nothing was started. Also returns the time up to which it looked, for the next call.
   */
  async unrecordedIntents(
    after: string | undefined,
    olderThanMs: number,
    limit: number,
  ): Promise<{ intents: UnrecordedRunIntent[]; upTo: string }> {
    const bound = await this.ds.query<Array<{ up_to: string }>>(
      `SELECT (now() - $1 * interval '1 millisecond')::text AS up_to`,
      [olderThanMs],
    );
    const upTo = bound[0]!.up_to;
    const intents = await this.ds.query<UnrecordedRunIntent[]>(
      `SELECT i.request_id, i.actor, i.auth_method, i.source_ip, i.params, i.at::text AS at
       FROM audit_events i
       WHERE i.at > COALESCE($1::timestamptz, now() - interval '1 day') AND i.at <= $2::timestamptz
         AND i.kind = 'intent' AND i.operation = 'run'
         AND i.params->>'run_id' ~ '^[0-9a-fA-F-]{36}$'
         AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = (i.params->>'run_id')::uuid)
         AND NOT EXISTS (SELECT 1 FROM audit_events o
                         WHERE o.kind = 'outcome' AND o.request_id = i.request_id)
       ORDER BY i.at LIMIT $3`,
      [after ?? null, upTo, limit],
    );
    return { intents, upTo };
  }

  /**
   * Records a run that never started, `failed` with no targets, under the id its intent named:
   * the row is the claim on the intent's outcome. False when the row exists already (its
   * replica recorded it after all, or another replica closed it first).
   */
  async insertNeverStarted(intent: UnrecordedRunIntent): Promise<boolean> {
    const p = intent.params;
    const rows = await this.ds.query<Array<{ id: string }>>(
      `INSERT INTO runs (id, actor, target, request, max_concurrency, max_errors, status, ended_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'failed', now())
       ON CONFLICT (id) DO NOTHING
       RETURNING id`,
      [
        p.run_id,
        intent.actor,
        JSON.stringify(p.target ?? {}),
        JSON.stringify(p),
        Number(p.max_concurrency) || 1,
        p.max_errors === undefined || p.max_errors === null ? null : Number(p.max_errors),
      ],
    );
    return rows.length > 0;
  }

  async setTarget(
    runId: string,
    vmId: string,
    state: TargetState,
    executionId?: string,
    error?: string,
  ): Promise<void> {
    await this.ds.query(
      `UPDATE run_targets SET state = $3, execution_id = COALESCE($4, execution_id), error = $5
       WHERE run_id = $1 AND vm_id = $2`,
      [runId, vmId, state, executionId ?? null, error ?? null],
    );
  }

  /** Marks a target `started` with its execution (as setTarget would). */
  setStarted(runId: string, vmId: string, executionId: string): Promise<void> {
    return this.starts.push({ runId, vmId, executionId });
  }

  private async startedRows(
    rows: Array<{ runId: string; vmId: string; executionId: string }>,
  ): Promise<void[]> {
    await this.ds.query(
      `UPDATE run_targets t SET state = 'started', execution_id = x.execution_id, error = NULL
       FROM jsonb_to_recordset($1::jsonb) AS x(run_id uuid, vm_id text, execution_id uuid)
       WHERE t.run_id = x.run_id AND t.vm_id = x.vm_id`,
      [
        JSON.stringify(
          rows.map((r) => ({ run_id: r.runId, vm_id: r.vmId, execution_id: r.executionId })),
        ),
      ],
    );
    return rows.map(() => undefined);
  }

  async finish(runId: string, status: RunState): Promise<void> {
    await this.ds.transaction(async (m) => {
      await m.query(
        `UPDATE run_targets SET state = 'skipped' WHERE run_id = $1 AND state = 'queued'`,
        [runId],
      );
      await m.query(`UPDATE runs SET status = $2, ended_at = now() WHERE id = $1`, [runId, status]);
    });
  }

  /** Extends the leases `owner` holds on these running runs. */
  async renew(owner: string, ids: string[], leaseMs: number): Promise<void> {
    await this.ds.query(
      `UPDATE runs SET lease_until = now() + $3 * interval '1 millisecond'
       WHERE id = ANY($2::uuid[]) AND owner = $1 AND status = 'running'`,
      [owner, ids, leaseMs],
    );
  }

  /** Lets another replica adopt the runs `owner` drives at once (a clean shutdown). */
  async release(owner: string): Promise<void> {
    await this.ds.query(
      `UPDATE runs SET lease_until = now() - interval '1 millisecond'
       WHERE owner = $1 AND status = 'running'`,
      [owner],
    );
  }

  /** Takes over up to `limit` running runs whose lease ran out: each by exactly one replica. */
  async adoptExpired(owner: string, leaseMs: number, limit: number): Promise<RunRow[]> {
    const [rows] = await this.ds.query<[RunRow[], number]>(
      `UPDATE runs SET owner = $1, lease_until = now() + $2 * interval '1 millisecond'
       WHERE id IN (SELECT id FROM runs
                    WHERE status = 'running' AND lease_until IS NOT NULL AND lease_until < now()
                    ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED)
         AND lease_until < now() AND status = 'running'
       RETURNING *`,
      [owner, leaseMs, limit],
    );
    return rows;
  }

  /** A run's targets as an adopter needs them. */
  async resumeTargets(runId: string): Promise<ResumeTargetRow[]> {
    return this.ds.query<ResumeTargetRow[]>(
      `SELECT t.vm_id, t.state, t.execution_id, e.status AS execution_status,
              s.id AS started_execution_id, s.status AS started_execution_status,
              v.project_id, v.node_id, v.agent_state
       FROM run_targets t
       LEFT JOIN executions e ON e.id = t.execution_id
       LEFT JOIN LATERAL (SELECT x.id, x.status FROM executions x
                          WHERE x.run_id = t.run_id AND x.vm_id = t.vm_id
                          ORDER BY x.created_at DESC LIMIT 1) s ON t.execution_id IS NULL
       LEFT JOIN vms v ON v.id = t.vm_id
       WHERE t.run_id = $1 ORDER BY t.vm_id`,
      [runId],
    );
  }

  /**
   * Runs still `running` that no live replica holds (no lease, or one that ran out), with no
   * execution under way and no progress for `idleMs`: the replica driving them stopped and none
   * adopted them (a live one always has an execution or a start under way, and a start is
   * retried for at most LQ_RUN_START_RETRY_MS).
   */
  async abandoned(idleMs: number): Promise<RunRow[]> {
    return this.ds.query<RunRow[]>(
      `SELECT r.* FROM runs r
       WHERE r.status = 'running' AND (r.lease_until IS NULL OR r.lease_until < now())
         AND NOT EXISTS (SELECT 1 FROM executions e
                         WHERE e.run_id = r.id AND e.status IN ('pending', 'running'))
         AND GREATEST(r.created_at,
                      COALESCE((SELECT max(e.ended_at) FROM executions e WHERE e.run_id = r.id),
                               r.created_at))
             < now() - $1 * interval '1 millisecond'`,
      [idleMs],
    );
  }

  /** Ends a run left by a stopped replica; false when it had ended meanwhile. */
  async abandon(runId: string): Promise<boolean> {
    return this.ds.transaction(async (m) => {
      const result = await m.query<[unknown[], number]>(
        `UPDATE runs SET status = 'failed', ended_at = now() WHERE id = $1 AND status = 'running'`,
        [runId],
      );
      if ((result[1] ?? 0) === 0) {
        return false;
      }
      await m.query(
        `UPDATE run_targets SET state = 'skipped', error = 'the control plane driving the run stopped'
         WHERE run_id = $1 AND state = 'queued'`,
        [runId],
      );
      return true;
    });
  }

  async get(runId: string): Promise<RunRow | undefined> {
    const rows = await this.ds.query<RunRow[]>('SELECT * FROM runs WHERE id = $1', [runId]);
    return rows[0];
  }

  /** A page of runs, newest first, with each one's VM count by state. */
  async list(
    f: RunListFilter,
  ): Promise<Array<RunRow & { cursor_at: string; summary: Record<string, number> | null }>> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: (n: string) => string, value: unknown) => {
      params.push(value);
      where.push(sql(`$${params.length}`));
    };
    if (f.onlyActor !== undefined) {
      add((n) => `r.actor = ${n}`, f.onlyActor);
    }
    if (f.actor !== undefined) {
      add((n) => `r.actor = ${n}`, f.actor);
    }
    if (f.vmId !== undefined) {
      add(
        (n) => `EXISTS (SELECT 1 FROM run_targets t WHERE t.run_id = r.id AND t.vm_id = ${n})`,
        f.vmId,
      );
    }
    if (f.projectId !== undefined) {
      add(
        (n) => `EXISTS (SELECT 1 FROM run_targets t JOIN vms v ON v.id = t.vm_id
                        WHERE t.run_id = r.id AND v.project_id = ${n})`,
        f.projectId,
      );
    }
    if (f.states !== undefined) {
      add((n) => `r.status = ANY(${n}::text[])`, f.states);
    }
    if (f.from !== undefined) {
      add((n) => `r.created_at >= ${n}`, f.from);
    }
    if (f.to !== undefined) {
      add((n) => `r.created_at <= ${n}`, f.to);
    }
    if (f.after !== undefined) {
      params.push(f.after.at, f.after.id);
      where.push(
        `(r.created_at, r.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
      );
    }
    params.push(f.limit);
    return this.ds.query(
      `SELECT r.*, r.created_at::text AS cursor_at,
         (SELECT jsonb_object_agg(s.state, s.n) FROM (
            SELECT CASE WHEN t.state = 'started' THEN COALESCE(e.status, 'running') ELSE t.state END
                     AS state, count(*)::int AS n
            FROM run_targets t LEFT JOIN executions e ON e.id = t.execution_id
            WHERE t.run_id = r.id GROUP BY 1) s) AS summary
       FROM runs r
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY r.created_at DESC, r.id DESC LIMIT $${params.length}`,
      params,
    );
  }

  async targets(runId: string): Promise<RunTargetRow[]> {
    return this.ds.query<RunTargetRow[]>(
      `SELECT t.vm_id, t.state, t.execution_id, t.error, e.status AS execution_status, e.exit_code
       FROM run_targets t LEFT JOIN executions e ON e.id = t.execution_id
       WHERE t.run_id = $1 ORDER BY t.vm_id`,
      [runId],
    );
  }
}
