import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { AgentRolloutStepState } from '@lq/api';

export type RolloutStatus = 'running' | 'succeeded' | 'failed' | 'stopped';

export interface RolloutRow {
  id: string;
  actor: string;
  version: string;
  target: Record<string, unknown>;
  canary: number;
  max_concurrency: number;
  max_errors: number;
  allow_downgrade: boolean;
  status: RolloutStatus;
  errors: number;
  created_at: Date;
  ended_at: Date | null;
  /** The replica driving it while running, until lease_until. */
  owner: string | null;
  lease_until: Date | null;
}

export interface RolloutVmRow {
  vm_id: string;
  seq: number;
  canary: boolean;
  state: AgentRolloutStepState;
  from_version: string | null;
  to_version: string | null;
  error: string | null;
  updated_at: Date;
}

export interface RolloutTargetVm {
  id: string;
  project_id: string;
  node_id: string;
  agent_version: string;
}

/** agent_rollouts, agent_rollout_vms and the inventory reads of the agent lifecycle; its only SQL. */
@Injectable()
export class AgentUpdatesRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  /** The VMs a rollout names among the projects `visible` ('all' or a list), gone ones left out. */
  resolve(
    target: { vmIds?: string[]; project?: string; labels?: Record<string, string> },
    visible: 'all' | string[],
  ): Promise<RolloutTargetVm[]> {
    const scope = visible === 'all' ? 'TRUE' : 'project_id = ANY($2::text[])';
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
    return this.ds.query<RolloutTargetVm[]>(
      `SELECT id, project_id, node_id, agent_version FROM vms
       WHERE ${where} AND ${scope} AND agent_state <> 'gone' ORDER BY id`,
      [param, ...(visible === 'all' ? [] : [visible])],
    );
  }

  /** VMs per agent version and target (gone ones left out), among `visible` projects. */
  versionCounts(
    visible: 'all' | string[],
  ): Promise<Array<{ version: string; target: string; vms: number }>> {
    const scope = visible === 'all' ? 'TRUE' : 'project_id = ANY($1::text[])';
    return this.ds.query(
      `SELECT agent_version AS version, agent_target AS target, count(*)::int AS vms FROM vms
       WHERE agent_state <> 'gone' AND ${scope}
       GROUP BY agent_version, agent_target ORDER BY agent_version, agent_target`,
      visible === 'all' ? [] : [visible],
    );
  }

  /** A running rollout, held by `owner` for `leaseMs`. */
  async insert(
    r: Omit<RolloutRow, 'status' | 'errors' | 'created_at' | 'ended_at' | 'owner' | 'lease_until'>,
    vms: Array<{ id: string; canary: boolean }>,
    owner: string,
    leaseMs: number,
  ): Promise<void> {
    await this.ds.transaction(async (m) => {
      await m.query(
        `INSERT INTO agent_rollouts (id, actor, version, target, canary, max_concurrency,
           max_errors, allow_downgrade, status, owner, lease_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9,
           now() + make_interval(secs => $10::double precision / 1000))`,
        [
          r.id,
          r.actor,
          r.version,
          JSON.stringify(r.target),
          r.canary,
          r.max_concurrency,
          r.max_errors,
          r.allow_downgrade,
          owner,
          leaseMs,
        ],
      );
      await m.query(
        `INSERT INTO agent_rollout_vms (rollout_id, vm_id, seq, canary, state)
         SELECT $1, x.vm_id, x.seq, x.canary, 'queued'
         FROM jsonb_to_recordset($2::jsonb) AS x(vm_id text, seq int, canary boolean)`,
        [r.id, JSON.stringify(vms.map((v, seq) => ({ vm_id: v.id, seq, canary: v.canary })))],
      );
    });
  }

  async setStep(
    id: string,
    vmId: string,
    state: AgentRolloutStepState,
    fields: { from?: string; to?: string; error?: string } = {},
  ): Promise<void> {
    await this.ds.query(
      `UPDATE agent_rollout_vms SET state = $3,
         from_version = COALESCE($4, from_version), to_version = COALESCE($5, to_version),
         error = COALESCE($6, error), updated_at = now()
       WHERE rollout_id = $1 AND vm_id = $2`,
      [id, vmId, state, fields.from ?? null, fields.to ?? null, fields.error ?? null],
    );
  }

  /**
   * Ends a running rollout `owner` still holds; false (nothing changed) when another replica
   * has taken it over meanwhile.
   */
  async finish(id: string, status: RolloutStatus, errors: number, owner: string): Promise<boolean> {
    return this.ds.transaction(async (m) => {
      const [rows] = await m.query<[unknown[], number]>(
        `UPDATE agent_rollouts SET status = $2, errors = $3, ended_at = now(), lease_until = NULL
         WHERE id = $1 AND owner = $4 AND status = 'running' RETURNING id`,
        [id, status, errors, owner],
      );
      if (rows.length === 0) {
        return false;
      }
      await m.query(
        `UPDATE agent_rollout_vms SET state = 'skipped', updated_at = now()
         WHERE rollout_id = $1 AND state = 'queued'`,
        [id],
      );
      return true;
    });
  }

  /**
   * Extends `owner`'s lease on the running rollouts `ids`; returns those it still holds (a
   * rollout missing from the answer was taken over, or ended).
   */
  async renew(ids: string[], owner: string, leaseMs: number): Promise<string[]> {
    if (ids.length === 0) {
      return [];
    }
    const [rows] = await this.ds.query<[Array<{ id: string }>, number]>(
      `UPDATE agent_rollouts SET lease_until = now() + make_interval(secs => $3::double precision / 1000)
       WHERE id = ANY($1::uuid[]) AND owner = $2 AND status = 'running' RETURNING id`,
      [ids, owner, leaseMs],
    );
    return rows.map((r) => r.id);
  }

  /** Takes over running rollouts whose lease ran out (at most `limit`), for `owner`. */
  async claimExpired(owner: string, leaseMs: number, limit: number): Promise<RolloutRow[]> {
    const [rows] = await this.ds.query<[RolloutRow[], number]>(
      `UPDATE agent_rollouts SET owner = $1,
         lease_until = now() + make_interval(secs => $2::double precision / 1000)
       WHERE id IN (SELECT id FROM agent_rollouts
                    WHERE status = 'running' AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [owner, leaseMs, limit],
    );
    return rows;
  }

  /** Gives up `owner`'s leases at once (a replica shutting down), so another resumes soon. */
  async release(ids: string[], owner: string): Promise<void> {
    if (ids.length > 0) {
      await this.ds.query(
        `UPDATE agent_rollouts SET lease_until = now()
         WHERE id = ANY($1::uuid[]) AND owner = $2 AND status = 'running'`,
        [ids, owner],
      );
    }
  }

  /** How the last self-update of each of `vmIds` ended, as its agent reports it. */
  async lastUpdates(
    vmIds: string[],
  ): Promise<
    Map<
      string,
      { agent_version: string; agent_state: string; last: Record<string, unknown> | null }
    >
  > {
    const rows = await this.ds.query<
      Array<{
        id: string;
        agent_version: string;
        agent_state: string;
        agent_last_update: Record<string, unknown> | null;
      }>
    >(
      'SELECT id, agent_version, agent_state, agent_last_update FROM vms WHERE id = ANY($1::text[])',
      [vmIds],
    );
    return new Map(
      rows.map((r) => [
        r.id,
        { agent_version: r.agent_version, agent_state: r.agent_state, last: r.agent_last_update },
      ]),
    );
  }

  async setErrors(id: string, errors: number): Promise<void> {
    await this.ds.query('UPDATE agent_rollouts SET errors = $2 WHERE id = $1', [id, errors]);
  }

  async get(id: string): Promise<RolloutRow | undefined> {
    const rows = await this.ds.query<RolloutRow[]>('SELECT * FROM agent_rollouts WHERE id = $1', [
      id,
    ]);
    return rows[0];
  }

  vms(id: string): Promise<RolloutVmRow[]> {
    return this.ds.query<RolloutVmRow[]>(
      `SELECT vm_id, seq, canary, state, from_version, to_version, error, updated_at
       FROM agent_rollout_vms WHERE rollout_id = $1 ORDER BY seq`,
      [id],
    );
  }

  /** The newest rollouts, of `actor` only unless it is null (auditors and admins see all). */
  list(actor: string | null, limit: number): Promise<RolloutRow[]> {
    return actor === null
      ? this.ds.query<RolloutRow[]>(
          'SELECT * FROM agent_rollouts ORDER BY created_at DESC LIMIT $1',
          [limit],
        )
      : this.ds.query<RolloutRow[]>(
          'SELECT * FROM agent_rollouts WHERE actor = $1 ORDER BY created_at DESC LIMIT $2',
          [actor, limit],
        );
  }
}
