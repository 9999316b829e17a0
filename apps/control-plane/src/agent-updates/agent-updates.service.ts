import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { AuthException, AuthService, holdsGlobally, projectsWith } from '@lq/auth';
import type {
  AgentRolloutBody,
  AgentRolloutListView,
  AgentRolloutView,
  AgentUpdateView,
  AgentVersionCountsView,
} from '@lq/api';
import { actorOf } from '../audit/audit-actor.js';
import type { Caller } from '../common/caller.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { AgentReleaseCatalog } from '../downloads/agent-release-catalog.js';
import { GuestOperationRunner } from '../guest-ops/guest-operation.runner.js';
import {
  AGENT_UPDATE,
  type AgentUpdateInput,
  type AgentUpdateStep,
} from '../guest-ops/operations/index.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { isOutdated } from '../inventory/vm.view.js';
import { parseVmTarget } from '../inventory/labels.js';
import {
  AgentUpdatesRepository,
  type RolloutRow,
  type RolloutStatus,
  type RolloutVmRow,
} from './agent-updates.repository.js';

/** A signed release-key list beside the releases is sent with every update (key rotation). */
const KEY_LIST = 'release-keys.json';
const KEY_LIST_SIGNATURE = 'release-keys.json.sig';

function invalid(field: string, message: string): VmGuestException {
  return new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, `${field} ${message}`);
}

/** A count, or a percentage of `total` (at least `min`). */
function amount(field: string, value: number | string, total: number, min: number): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < min) {
      throw invalid(field, `must be a whole number ≥ ${min} or a percentage like "10%"`);
    }
    return value;
  }
  const m = /^(\d{1,3})%$/.exec(String(value).trim());
  if (!m || Number(m[1]) > 100) {
    throw invalid(field, `must be a whole number ≥ ${min} or a percentage like "10%"`);
  }
  return Math.max(min, Math.ceil((Number(m[1]) / 100) * total));
}

/** Steps a replica leaves behind when it stops mid-update: the update may or may not have landed. */
const IN_FLIGHT = new Set(['sent', 'verified', 'restarted']);
/** Rollouts one replica takes over per look. */
const CLAIM_BATCH = 10;

/** A rollout VM update's audit request id: the same on every replica (a UUID from a hash). */
export function rolloutRequestId(rolloutId: string, seq: number, attempt: number): string {
  const h = createHash('sha256').update(`${rolloutId}:${seq}:${attempt}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A rollout VM update's id in the guest (attempt 0 is the first; later ones after a takeover). */
export function rolloutUpdateId(rolloutId: string, seq: number, attempt: number): string {
  return `r${rolloutId.slice(0, 8)}-${seq}${attempt > 0 ? `-a${attempt}` : ''}`;
}

/**
 * Agent self-updates from the control plane (issue 19): one VM through GuestOperationRunner
 * (audited intent, then the outcome with both versions), and rollouts of a release over VMs named
 * by ids, a project or labels — canaries first, one at a time, then max_concurrency at once, no
 * VM started once more than max_errors have failed or rolled back. Each VM's update is its own
 * audited operation carrying the rollout id; its steps are kept per VM.
 *
 * A rollout survives the replica driving it: the driver holds it by a lease in PostgreSQL
 * (owner, lease_until; renewed every third of LQ_AGENT_ROLLOUT_LEASE_MS). When a replica stops
 * renewing (killed, cut off), another claims the rollout once the lease has run out and resumes
 * it from its per-VM steps, as the user who started it (with that user's current bindings): an
 * update the lost replica left in flight is judged from what the VM's agent reports under its
 * update id (ready, rolled back) and written as the outcome of its audit intent, or sent again
 * under a new id when it never reached the guest's commit; queued VMs go on as before. A replica
 * that finds its lease taken stops starting VMs for that rollout.
 */
@Injectable()
export class AgentUpdatesService implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('agent-updates');
  /** This process, as the owner of the rollouts it drives. */
  private readonly replica = randomUUID();
  /** Rollouts this replica drives; `lost` once another replica has taken one over. */
  private readonly driving = new Map<string, { lost: boolean }>();
  private renewTimer?: NodeJS.Timeout;
  private claimTimer?: NodeJS.Timeout;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(AgentReleaseCatalog) private readonly catalog: AgentReleaseCatalog,
    @Inject(GuestOperationRunner) private readonly runner: GuestOperationRunner,
    @Inject(AgentUpdatesRepository) private readonly repo: AgentUpdatesRepository,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(AuthService) private readonly auth: AuthService,
  ) {}

  onModuleInit(): void {
    const lease = this.config.agentUpdates.rolloutLeaseMs;
    this.renewTimer = setInterval(() => void this.renew(), Math.max(250, Math.floor(lease / 3)));
    this.renewTimer.unref();
    // Replicas look at different moments, so one of them picks an orphan up soon.
    this.claimTimer = setInterval(
      () => void this.claim(),
      Math.max(500, Math.floor(lease / 2) + Math.floor(Math.random() * 250)),
    );
    this.claimTimer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.renewTimer);
    clearInterval(this.claimTimer);
    const ids = [...this.driving.keys()];
    for (const h of this.driving.values()) {
      h.lost = true;
    }
    // Another replica resumes them at its next look instead of after the lease.
    await this.repo.release(ids, this.replica).catch(() => undefined);
  }

  private async renew(): Promise<void> {
    const ids = [...this.driving.keys()];
    if (ids.length === 0) {
      return;
    }
    try {
      const held = new Set(
        await this.repo.renew(ids, this.replica, this.config.agentUpdates.rolloutLeaseMs),
      );
      for (const id of ids) {
        const h = this.driving.get(id);
        if (h && !held.has(id) && !h.lost) {
          h.lost = true;
          this.log.warn(`rollout ${id}: taken over by another replica; no more VMs started here`);
        }
      }
    } catch (err) {
      this.log.warn(`rollout leases not renewed: ${(err as Error).message}`);
    }
  }

  private async claim(): Promise<void> {
    let rows: RolloutRow[];
    try {
      rows = await this.repo.claimExpired(
        this.replica,
        this.config.agentUpdates.rolloutLeaseMs,
        CLAIM_BATCH,
      );
    } catch (err) {
      this.log.warn(`orphaned rollouts not looked for: ${(err as Error).message}`);
      return;
    }
    for (const row of rows) {
      void this.resume(row).catch((err: Error) =>
        this.log.error(`rollout ${row.id}: resume failed: ${err.message}`),
      );
    }
  }

  /** Drives a rollout another replica left, as the user who started it. */
  private async resume(row: RolloutRow): Promise<void> {
    this.log.log(`rollout ${row.id}: resuming (its driving replica stopped renewing its lease)`);
    const principal = await this.auth.principalOfUser(row.actor);
    if (!principal) {
      // Nothing more is started for a user who is gone or disabled.
      const caller: Caller = {
        principal: { userId: '', username: row.actor, authMethod: 'jwt', bindings: [] },
        requestId: randomUUID(),
        sourceIp: '',
      };
      if (await this.repo.finish(row.id, 'stopped', row.errors, this.replica)) {
        await this.audit.record({
          ...actorOf(caller.principal, caller),
          kind: 'outcome',
          operation: 'agent.rollout',
          status: 'stopped',
          error: `user ${row.actor} is gone or disabled: not resumed`,
          params: { rollout_id: row.id, version: row.version, errors: row.errors },
        });
      }
      return;
    }
    await this.drive(row, { principal, requestId: randomUUID(), sourceIp: '' });
  }

  /** Updates one VM's agent and answers how it ended. */
  async update(
    caller: Caller,
    vmId: string,
    body: { version: string; allow_downgrade?: boolean },
    extra: {
      rolloutId?: string;
      updateId?: string;
      requestId?: string;
      onStep?: (step: AgentUpdateStep) => void;
    } = {},
  ): Promise<AgentUpdateView> {
    this.checkVersion(body.version);
    // A rollout's VMs are each their own audited request (one intent, one outcome each).
    const result = await this.runner.run(
      AGENT_UPDATE,
      caller,
      vmId,
      this.input(body, extra),
      extra.requestId ? { requestId: extra.requestId } : {},
    );
    return { ...result, vm_id: vmId };
  }

  /** The fleet by agent version, with what is outdated. */
  async versions(caller: Caller): Promise<AgentVersionCountsView> {
    const latest = this.catalog.latest();
    const rows = await this.repo.versionCounts(projectsWith(caller.principal, 'vm.read'));
    return {
      latest,
      versions: rows.map((r) => ({ ...r, outdated: isOutdated(r.version, latest) })),
    };
  }

  async createRollout(body: AgentRolloutBody, caller: Caller): Promise<AgentRolloutView> {
    this.checkVersion(body.version);
    const target = parseVmTarget(body.target, invalid);
    const vms = await this.repo.resolve(target, projectsWith(caller.principal, 'vm.read'));
    if (vms.length === 0) {
      throw invalid('target', 'matches no VM you can see');
    }
    const max = this.config.agentUpdates.rolloutMaxVms;
    if (vms.length > max) {
      throw invalid(
        'target',
        `matches ${vms.length} VMs; the limit is LQ_AGENT_ROLLOUT_MAX_VMS ${max}`,
      );
    }
    const canary = body.canary ?? 1;
    if (!Number.isInteger(canary) || canary < 0 || canary > vms.length) {
      throw invalid('canary', `must be a whole number from 0 to the ${vms.length} VMs targeted`);
    }
    const maxConcurrency = amount('max_concurrency', body.max_concurrency ?? 5, vms.length, 1);
    const maxErrors = amount('max_errors', body.max_errors ?? 0, vms.length, 0);
    const id = randomUUID();
    await this.audit.intent({
      ...actorOf(caller.principal, caller),
      operation: 'agent.rollout',
      params: {
        rollout_id: id,
        version: body.version,
        target: body.target,
        canary,
        max_concurrency: maxConcurrency,
        max_errors: maxErrors,
        allow_downgrade: body.allow_downgrade ?? false,
        vms: vms.length,
      },
    });
    await this.repo.insert(
      {
        id,
        actor: caller.principal.username,
        version: body.version,
        target: body.target,
        canary,
        max_concurrency: maxConcurrency,
        max_errors: maxErrors,
        allow_downgrade: body.allow_downgrade ?? false,
      },
      vms.map((v, i) => ({ id: v.id, canary: i < canary })),
      this.replica,
      this.config.agentUpdates.rolloutLeaseMs,
    );
    const row = (await this.repo.get(id))!;
    void this.drive(row, caller).catch((err: Error) =>
      this.log.error(`rollout ${id}: ${err.message}`),
    );
    return this.view(id);
  }

  async getRollout(id: string, caller: Caller): Promise<AgentRolloutView> {
    const row = await this.known(id);
    this.mayRead(row, caller);
    return this.view(id);
  }

  async listRollouts(caller: Caller): Promise<AgentRolloutListView> {
    const p = caller.principal;
    const all = holdsGlobally(p, 'audit.read') || holdsGlobally(p, 'admin');
    const rows = await this.repo.list(all ? null : p.username, 100);
    return { rollouts: rows.map((r) => this.summary(r)) };
  }

  /**
   * Canaries one at a time, then the rest max_concurrency at once; nothing new starts once the
   * errors exceed max_errors (a canary that fails stops the rest at once when max_errors is 0).
   * From the rollout's stored steps, so a replica that takes a rollout over goes on where the
   * last one stopped; updates that one left in flight are settled first.
   */
  private async drive(row: RolloutRow, caller: Caller): Promise<void> {
    const held = { lost: false };
    this.driving.set(row.id, held);
    try {
      const body = { version: row.version, allow_downgrade: row.allow_downgrade };
      let errors = row.errors;
      const over = () => errors > row.max_errors;
      const stop = () => over() || held.lost;
      const count = async (ok: boolean) => {
        if (!ok) {
          errors++;
          await this.repo.setErrors(row.id, errors).catch(() => undefined);
        }
      };
      const steps = await this.repo.vms(row.id);
      for (const step of steps.filter((v) => IN_FLIGHT.has(v.state))) {
        if (stop()) {
          break;
        }
        await count(await this.settle(row, caller, body, step));
      }
      const queued = steps.filter((v) => v.state === 'queued');
      const canaries = queued.filter((v) => v.canary);
      const rest = queued.filter((v) => !v.canary);
      for (const step of canaries) {
        if (stop()) {
          break;
        }
        await count(await this.updateOne(row.id, caller, body, step, 0));
      }
      let next = 0;
      const workers = Array.from(
        { length: Math.min(row.max_concurrency, rest.length) },
        async () => {
          while (!stop() && next < rest.length) {
            await count(await this.updateOne(row.id, caller, body, rest[next++]!, 0));
          }
        },
      );
      await Promise.all(workers);
      if (held.lost) {
        return; // the replica that took it over finishes it
      }
      const status: RolloutStatus = over() ? 'stopped' : errors > 0 ? 'failed' : 'succeeded';
      if (await this.repo.finish(row.id, status, errors, this.replica)) {
        await this.audit.record({
          ...actorOf(caller.principal, caller),
          kind: 'outcome',
          operation: 'agent.rollout',
          status,
          params: { rollout_id: row.id, version: row.version, errors },
        });
      }
    } finally {
      this.driving.delete(row.id);
    }
  }

  /**
   * An update a lost replica left in flight: what the VM's agent reports under the update's id
   * decides it (its audit intent gets the outcome the lost replica never wrote); no report within
   * LQ_AGENT_UPDATE_READY_GRACE_MS (at least 5 s) means the guest never committed it, so it is
   * sent again under a new update id.
   */
  private async settle(
    row: RolloutRow,
    caller: Caller,
    body: { version: string; allow_downgrade: boolean },
    step: RolloutVmRow,
  ): Promise<boolean> {
    const updateId = rolloutUpdateId(row.id, step.seq, 0);
    const until = Date.now() + Math.max(5000, this.config.agentUpdates.readyGraceMs);
    let seen: { agent_version: string; last: Record<string, unknown> | null } | undefined;
    for (;;) {
      seen = (await this.repo.lastUpdates([step.vm_id])).get(step.vm_id);
      const last = seen?.last;
      if ((last?.updateId === updateId && last.result !== 'pending') || Date.now() >= until) {
        break;
      }
      await new Promise((r) => setTimeout(r, this.config.agentUpdates.pollMs));
    }
    const last = seen?.last;
    if (last?.updateId !== updateId) {
      this.log.log(`rollout ${row.id}: ${step.vm_id}: the lost update never landed; sent again`);
      return this.updateOne(row.id, caller, body, step, 1);
    }
    const ready = last.result === 'ok' && seen?.agent_version === row.version;
    const state = ready ? 'ready' : last.result === 'rolled_back' ? 'rolled_back' : 'failed';
    const reason =
      state === 'failed'
        ? `the update did not settle after its driving replica was lost (${String(last.result)})`
        : typeof last.reason === 'string'
          ? last.reason
          : '';
    await this.repo.setStep(row.id, step.vm_id, state, { error: reason || undefined });
    await this.audit
      .record({
        ...actorOf(caller.principal, {
          ...caller,
          requestId: rolloutRequestId(row.id, step.seq, 0),
        }),
        kind: 'outcome',
        operation: 'agent.update',
        vmId: step.vm_id,
        status: state,
        ...(reason ? { error: reason } : {}),
        params: {
          update_id: updateId,
          rollout_id: row.id,
          from_version: step.from_version,
          to_version: row.version,
          version: seen?.agent_version,
          settled_by: 'another replica (the driving one was lost)',
        },
      })
      .catch((err: Error) =>
        this.log.warn(`rollout ${row.id}: ${step.vm_id}: outcome not written: ${err.message}`),
      );
    return ready;
  }

  /** One VM of a rollout; true when its new agent is ready (or it was denied, not counted). */
  private async updateOne(
    id: string,
    caller: Caller,
    body: { version: string; allow_downgrade: boolean },
    vm: RolloutVmRow,
    attempt: number,
  ): Promise<boolean> {
    const from = (await this.repo.lastUpdates([vm.vm_id]).catch(() => undefined))?.get(
      vm.vm_id,
    )?.agent_version;
    // Steps are written in order, the last after every earlier one.
    let steps = this.repo.setStep(id, vm.vm_id, 'sent', { from, to: body.version });
    const step = (state: AgentUpdateStep) => {
      steps = steps.then(() => this.repo.setStep(id, vm.vm_id, state)).catch(() => undefined);
    };
    try {
      const r = await this.update(caller, vm.vm_id, body, {
        rolloutId: id,
        updateId: rolloutUpdateId(id, vm.seq, attempt),
        requestId: rolloutRequestId(id, vm.seq, attempt),
        onStep: step,
      });
      await steps;
      await this.repo.setStep(id, vm.vm_id, r.state, {
        from: r.from_version,
        error: r.reason || undefined,
      });
      return r.state === 'ready';
    } catch (err) {
      await steps.catch(() => undefined);
      const denied = err instanceof AuthException;
      await this.repo.setStep(id, vm.vm_id, denied ? 'denied' : 'failed', {
        error: (err as Error).message,
      });
      return denied;
    }
  }

  private input(
    body: { version: string; allow_downgrade?: boolean },
    extra: { rolloutId?: string; updateId?: string; onStep?: (step: AgentUpdateStep) => void },
  ): AgentUpdateInput {
    return {
      version: body.version,
      allowDowngrade: body.allow_downgrade ?? false,
      updateId: extra.updateId ?? `u${randomUUID().replaceAll('-', '').slice(0, 20)}`,
      rolloutId: extra.rolloutId,
      artifactFor: (target) => this.catalog.artifact(body.version, target),
      keyList: this.keyList(),
      readyGraceMs: this.config.agentUpdates.readyGraceMs,
      pollMs: this.config.agentUpdates.pollMs,
      chunkTimeoutMs: this.config.agentUpdates.chunkTimeoutMs,
      commitTimeoutMs: this.config.agentUpdates.commitTimeoutMs,
      onStep: extra.onStep,
    };
  }

  /** release-keys.json and its signature beside the releases, when both are there. */
  private keyList(): AgentUpdateInput['keyList'] {
    const root = this.catalog.root();
    if (!root || !existsSync(join(root, KEY_LIST)) || !existsSync(join(root, KEY_LIST_SIGNATURE))) {
      return undefined;
    }
    return {
      list: readFileSync(join(root, KEY_LIST)),
      signature: Buffer.from(readFileSync(join(root, KEY_LIST_SIGNATURE), 'utf8').trim(), 'base64'),
    };
  }

  private checkVersion(version: unknown): void {
    if (typeof version !== 'string' || !this.catalog.has(version)) {
      const on = this.catalog.list().releases.map((r) => r.version);
      throw invalid(
        'version',
        `${JSON.stringify(version)} is not a release here (${on.length ? on.join(', ') : 'none'}; GET /api/agent/releases)`,
      );
    }
    if (!this.catalog.list().releases.find((r) => r.version === version)?.updatable) {
      throw invalid('version', `release ${version} has no verified signed executables`);
    }
  }

  private async known(id: string): Promise<RolloutRow> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) {
      throw invalid('rollout id', 'must be a UUID');
    }
    const row = await this.repo.get(id);
    if (!row) {
      throw new VmGuestException(VmGuestErrorCode.NOT_FOUND, `no rollout ${id}`);
    }
    return row;
  }

  private mayRead(row: RolloutRow, caller: Caller): void {
    const p = caller.principal;
    if (row.actor !== p.username && !holdsGlobally(p, 'audit.read') && !holdsGlobally(p, 'admin')) {
      throw AuthException.denied('audit.read', `(rollout ${row.id} was started by ${row.actor})`);
    }
  }

  private summary(r: RolloutRow): Omit<AgentRolloutView, 'vms'> {
    return {
      id: r.id,
      actor: r.actor,
      version: r.version,
      status: r.status,
      target: r.target,
      canary: r.canary,
      max_concurrency: r.max_concurrency,
      max_errors: r.max_errors,
      errors: r.errors,
      created_at: r.created_at.toISOString(),
      ended_at: r.ended_at?.toISOString() ?? null,
      summary: {},
    };
  }

  private async view(id: string): Promise<AgentRolloutView> {
    const row = (await this.repo.get(id))!;
    const vms = await this.repo.vms(id);
    const summary: Record<string, number> = {};
    for (const v of vms) {
      summary[v.state] = (summary[v.state] ?? 0) + 1;
    }
    return {
      ...this.summary(row),
      summary,
      vms: vms.map((v) => ({
        vm_id: v.vm_id,
        canary: v.canary,
        state: v.state,
        from_version: v.from_version,
        to_version: v.to_version,
        error: v.error,
        updated_at: v.updated_at.toISOString(),
      })),
    };
  }
}
