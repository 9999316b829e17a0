import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import { AuthException, holdsGlobally, projectsWith } from '@lq/auth';
import { isSubjectToken } from '@lq/proto';
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
import { parseLabels } from '../inventory/labels.js';
import {
  AgentUpdatesRepository,
  type RolloutRow,
  type RolloutStatus,
  type RolloutTargetVm,
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

/**
 * Agent self-updates from the control plane (issue 19): one VM through GuestOperationRunner
 * (audited intent, then the outcome with both versions), and rollouts of a release over VMs named
 * by ids, a project or labels — canaries first, one at a time, then max_concurrency at once, no
 * VM started once more than max_errors have failed or rolled back. Each VM's update is its own
 * audited operation carrying the rollout id; its steps are kept per VM.
 */
@Injectable()
export class AgentUpdatesService {
  private readonly log = new Logger('agent-updates');

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(AgentReleaseCatalog) private readonly catalog: AgentReleaseCatalog,
    @Inject(GuestOperationRunner) private readonly runner: GuestOperationRunner,
    @Inject(AgentUpdatesRepository) private readonly repo: AgentUpdatesRepository,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /** Updates one VM's agent and answers how it ended. */
  async update(
    caller: Caller,
    vmId: string,
    body: { version: string; allow_downgrade?: boolean },
    extra: { rolloutId?: string; updateId?: string; onStep?: (step: AgentUpdateStep) => void } = {},
  ): Promise<AgentUpdateView> {
    this.checkVersion(body.version);
    // A rollout's VMs are each their own audited request (one intent, one outcome each).
    const result = await this.runner.run(
      AGENT_UPDATE,
      caller,
      vmId,
      this.input(body, extra),
      extra.rolloutId ? { requestId: randomUUID() } : {},
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
    const target = this.targetOf(body.target);
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
    );
    void this.drive(id, caller, body, vms, canary, maxConcurrency, maxErrors).catch((err: Error) =>
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
   */
  private async drive(
    id: string,
    caller: Caller,
    body: AgentRolloutBody,
    vms: RolloutTargetVm[],
    canary: number,
    maxConcurrency: number,
    maxErrors: number,
  ): Promise<void> {
    let errors = 0;
    let seq = 0;
    const over = () => errors > maxErrors;
    const one = async (vm: RolloutTargetVm, n: number) => {
      const ok = await this.updateOne(id, caller, body, vm, n);
      if (!ok) {
        errors++;
        await this.repo.setErrors(id, errors).catch(() => undefined);
      }
    };
    for (; seq < canary && !over(); seq++) {
      await one(vms[seq]!, seq);
    }
    const workers = Array.from({ length: Math.min(maxConcurrency, vms.length) }, async () => {
      while (!over() && seq < vms.length) {
        const n = seq++;
        await one(vms[n]!, n);
      }
    });
    await Promise.all(workers);
    const status: RolloutStatus = over() ? 'stopped' : errors > 0 ? 'failed' : 'succeeded';
    await this.repo.finish(id, status, errors);
    await this.audit.record({
      ...actorOf(caller.principal, caller),
      kind: 'outcome',
      operation: 'agent.rollout',
      status,
      params: { rollout_id: id, version: body.version, errors },
    });
  }

  /** One VM of a rollout; true when its new agent is ready (or it was denied, not counted). */
  private async updateOne(
    id: string,
    caller: Caller,
    body: AgentRolloutBody,
    vm: RolloutTargetVm,
    seq: number,
  ): Promise<boolean> {
    // Steps are written in order, the last after every earlier one.
    let steps = this.repo.setStep(id, vm.id, 'sent', {
      from: vm.agent_version,
      to: body.version,
    });
    const step = (state: AgentUpdateStep) => {
      steps = steps.then(() => this.repo.setStep(id, vm.id, state)).catch(() => undefined);
    };
    try {
      const r = await this.update(caller, vm.id, body, {
        rolloutId: id,
        updateId: `r${id.slice(0, 8)}-${seq}`,
        onStep: step,
      });
      await steps;
      await this.repo.setStep(id, vm.id, r.state, {
        from: r.from_version,
        error: r.reason || undefined,
      });
      return r.state === 'ready';
    } catch (err) {
      await steps.catch(() => undefined);
      const denied = err instanceof AuthException;
      await this.repo.setStep(id, vm.id, denied ? 'denied' : 'failed', {
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

  private targetOf(t: AgentRolloutBody['target']): {
    vmIds?: string[];
    project?: string;
    labels?: Record<string, string>;
  } {
    const given = [t?.vm_ids, t?.project, t?.labels].filter((x) => x !== undefined).length;
    if (given !== 1) {
      throw invalid('target', 'must name exactly one of vm_ids, project or labels');
    }
    if (t.vm_ids) {
      if (t.vm_ids.length === 0 || t.vm_ids.some((v) => !isSubjectToken(v))) {
        throw invalid('target.vm_ids', 'must be VM ids (1-128 letters, digits, _ or -)');
      }
      return { vmIds: [...new Set(t.vm_ids)] };
    }
    if (t.project !== undefined) {
      return { project: t.project };
    }
    return { labels: parseLabels(t.labels!, 'target.labels') };
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
