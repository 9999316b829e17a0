import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

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
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

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
    run: Omit<RunRow, 'created_at' | 'ended_at' | 'status'>,
    vmIds: string[],
  ): Promise<void> {
    await this.ds.transaction(async (m) => {
      await m.query(
        `INSERT INTO runs (id, actor, target, request, max_concurrency, max_errors, status)
         VALUES ($1, $2, $3, $4, $5, $6, 'running')`,
        [
          run.id,
          run.actor,
          JSON.stringify(run.target),
          JSON.stringify(run.request),
          run.max_concurrency,
          run.max_errors,
        ],
      );
      await m.query(
        `INSERT INTO run_targets (run_id, vm_id, state) SELECT $1, unnest($2::text[]), 'queued'`,
        [run.id, vmIds],
      );
    });
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

  async finish(runId: string, status: RunState): Promise<void> {
    await this.ds.transaction(async (m) => {
      await m.query(
        `UPDATE run_targets SET state = 'skipped' WHERE run_id = $1 AND state = 'queued'`,
        [runId],
      );
      await m.query(`UPDATE runs SET status = $2, ended_at = now() WHERE id = $1`, [runId, status]);
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
