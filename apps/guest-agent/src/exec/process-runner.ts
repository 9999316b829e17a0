import { ErrorCode, type ExecuteRequest, type ExecuteResponse } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import { ChildSupervisor, type ExecHooks } from './child-supervisor.js';
import { invalid } from './exec-request.js';
import { ExecPlanner, type ExecPlan } from './exec-planner.js';
import { signalGroup } from './process-group.js';
import type { UserResolver } from './user-resolver.js';

/**
 * Runs executions (PROTOCOL.md §6 Execute): admits them up to exec.max_concurrent, has
 * ExecPlanner check and plan each (exec-planner.ts) and ChildSupervisor run it
 * (child-supervisor.ts), and keeps what cancel() and killAll() need: the running process groups
 * and the executions that have an id.
 */
export class ProcessRunner {
  private active = 0;
  /** Process group ids of the children still running, for killAll(). */
  private readonly groups = new Set<number>();
  /** Running executions that have an id: how to cancel each. */
  private readonly cancels = new Map<string, () => void>();
  private readonly planner: ExecPlanner;
  private readonly supervisor: ChildSupervisor;

  constructor(
    private readonly config: AgentConfig,
    users: UserResolver,
    log?: Logger,
  ) {
    this.planner = new ExecPlanner(config, users);
    this.supervisor = new ChildSupervisor(
      config,
      {
        started: (pgid, id, cancel) => {
          this.groups.add(pgid);
          if (id !== undefined) {
            this.cancels.set(id, cancel);
          }
        },
        ended: (pgid, id) => {
          this.groups.delete(pgid);
          if (id !== undefined) {
            this.cancels.delete(id);
          }
        },
      },
      log,
    );
  }

  /** Executions admitted and not yet answered. */
  get activeCount(): number {
    return this.active;
  }

  /**
   * Validates, resolves the run-as identity, spawns and waits. Throws AgentOpError: BUSY,
   * INVALID_REQUEST, TOO_LARGE, USER_NOT_FOUND, GROUP_NOT_FOUND, NOT_ALLOWED, EXEC_FAILED.
   */
  async run(request: ExecuteRequest, hooks: ExecHooks = {}): Promise<ExecuteResponse> {
    if (hooks.executionId !== undefined && this.cancels.has(hooks.executionId)) {
      throw invalid(`execution_id ${hooks.executionId} is already running`);
    }
    const max = this.config.exec.max_concurrent;
    if (this.active >= max) {
      throw new AgentOpError(
        ErrorCode.BUSY,
        `exec.max_concurrent (${max}) executions are already running; retry later`,
      );
    }
    this.active++;
    try {
      return await this.supervisor.run(await this.planner.plan(request), hooks);
    } finally {
      this.active--;
    }
  }

  /** Everything that can fail before a process exists: fields, identity, cwd. */
  plan(request: ExecuteRequest): Promise<ExecPlan> {
    return this.planner.plan(request);
  }

  /**
   * Stops the execution registered under `executionId` (SIGTERM to its process group, SIGKILL
   * after kill_grace_ms); its run() then resolves with cancelled = true. False when none runs.
   */
  cancel(executionId: string): boolean {
    const cancel = this.cancels.get(executionId);
    cancel?.();
    return cancel !== undefined;
  }

  /** Kills every running execution's process group (agent shutdown); returns how many. */
  killAll(signal: NodeJS.Signals = 'SIGKILL'): number {
    let count = 0;
    for (const pgid of this.groups) {
      if (signalGroup(pgid, signal)) {
        count++;
      }
    }
    return count;
  }
}
