import { performance } from 'node:perf_hooks';
import { create } from '@bufbuild/protobuf';
import { ErrorCode, ExecuteResponseSchema, type ExecuteResponse } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import { spawnChild, type ChildPipe, type SpawnedChild, type SpawnRequest } from './child-spawn.js';
import type { ExecPlan } from './exec-planner.js';
import { HELPER_NAME } from './helper-env.js';
import { OutputCapture } from './output-capture.js';
import { groupHasLiveMembers, signalGroup, waitGroupGone } from './process-group.js';

/** What a caller may hook into one execution. */
export interface ExecHooks {
  /** Registers the execution under this id, so cancel(id) can stop it. */
  executionId?: string;
  /**
   * Every chunk of output as it arrives (before the capture cap). A number answered is how many
   * milliseconds to stop reading that pipe (streamed output's pacing; never once the group is
   * being ended, so a timeout or cancel still drains the pipes at once).
   */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => number | void;
}

/** Who is told when a child's process group starts and ends (ProcessRunner's bookkeeping). */
export interface ChildRegistry {
  started(pgid: number, executionId: string | undefined, cancel: () => void): void;
  ended(pgid: number, executionId: string | undefined): void;
}

/** After the SIGKILL, how long pipes held by processes that left the group may stay open. */
const PIPE_GRACE_MS = 200;
/** After the SIGKILL, how long to wait for the group's members to be gone before answering. */
const GROUP_EXIT_WAIT_MS = 500;
/** ...and for init to reap the zombies of members orphaned by the leader's death. */
const GROUP_REAP_WAIT_MS = 100;
/** A leader that outlives SIGKILL this long (stuck in the kernel) is given up on. */
const ABANDON_MS = 5000;

/**
 * Spawns one planned execution and sees it to the end: the child leads its own session and
 * process group, which the timeout or a cancel signals as a whole (SIGTERM, SIGKILL after
 * exec.kill_grace_ms); output is captured up to the plan's cap per stream while the pipes are
 * drained; the answer waits for the group to be gone, not only its leader.
 */
export class ChildSupervisor {
  constructor(
    private readonly config: AgentConfig,
    private readonly registry: ChildRegistry,
    private readonly log?: Logger,
  ) {}

  run(plan: ExecPlan, hooks: ExecHooks = {}): Promise<ExecuteResponse> {
    return new Promise<ExecuteResponse>((resolve, reject) => {
      const { identity } = plan;
      const started = performance.now();
      const request: SpawnRequest = {
        file: plan.file,
        args: plan.args,
        cwd: plan.cwd,
        env: plan.env,
        fd3Input: plan.helperEnv,
        noStdin: plan.stdin.length === 0,
      };
      if (identity.mode === 'spawn') {
        request.uid = identity.uid;
        request.gid = identity.gid;
      }
      spawnChild(request).then(
        (child) => this.supervise(plan, hooks, child, started, resolve, reject),
        (e: unknown) => reject(e instanceof AgentOpError ? e : spawnError(plan, e)),
      );
    });
  }

  private supervise(
    plan: ExecPlan,
    hooks: ExecHooks,
    child: SpawnedChild,
    started: number,
    resolve: (response: ExecuteResponse) => void,
    reject: (err: Error) => void,
  ): void {
    const { identity } = plan;
    const { stdout, stderr } = child;
    const pgid = child.pid;
    const out = new OutputCapture(plan.outputLimit);
    const err = new OutputCapture(plan.outputLimit);
    const procDir = this.config.system.proc_dir;
    const timers: NodeJS.Timeout[] = [];
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let outClosed = false;
    let errClosed = false;
    let timedOut = false;
    let cancelled = false;
    let terminating = false;
    let killSent = false;
    let pipeGraceOver = false;
    let settling = false;
    let done = false;
    // Ends the pacing of streamed output (set once the pipes are hooked up).
    let unpace = (): void => undefined;

    const cleanup = (): void => {
      done = true;
      timers.forEach(clearTimeout);
      unpace();
      this.registry.ended(pgid, hooks.executionId);
      child.destroy();
    };

    const finish = (): void => {
      if (done) {
        return;
      }
      cleanup();
      const failed = setprivFailure(plan, exit?.code ?? null, err.bytes());
      if (failed) {
        reject(failed);
        return;
      }
      resolve(
        create(ExecuteResponseSchema, {
          exitCode: exit?.code ?? undefined,
          signal: exit?.signal ?? '',
          timedOut,
          cancelled,
          stdout: out.bytes(),
          stderr: err.bytes(),
          stdoutTruncated: out.truncated,
          stderrTruncated: err.truncated,
          stdoutTotalBytes: BigInt(out.totalBytes),
          stderrTotalBytes: BigInt(err.totalBytes),
          durationMs: Math.round(performance.now() - started),
          pid: pgid,
          uid: identity.uid,
          gid: identity.gid,
          groups: identity.groups,
        }),
      );
    };

    // Without a timeout: the leader's exit and both pipes' EOF. After one: the group must be
    // gone, and pipes that processes which left the group still hold are given up on.
    const settle = async (): Promise<void> => {
      if (done || settling || exit === null) {
        return;
      }
      const pipesClosed = outClosed && errClosed;
      if (!terminating) {
        if (pipesClosed) {
          finish();
        }
        return;
      }
      if (!pipesClosed && !pipeGraceOver) {
        return;
      }
      settling = true;
      const live = !killSent && (await groupHasLiveMembers(procDir, pgid));
      if (live && !killSent) {
        // Members that ignore SIGTERM: the SIGKILL timer settles again.
        settling = false;
        return;
      }
      if (killSent) {
        await waitGroupGone(procDir, pgid, GROUP_EXIT_WAIT_MS, GROUP_REAP_WAIT_MS);
      }
      finish();
    };
    const trySettle = (): void => {
      settle().catch((e: unknown) => {
        if (!done) {
          cleanup();
          reject(toAgentOpError(e, `execute ${plan.program}`));
        }
      });
    };

    const onKill = (): void => {
      if (killSent || done) {
        return;
      }
      killSent = true;
      signalGroup(pgid, 'SIGKILL');
      timers.push(
        setTimeout(() => {
          pipeGraceOver = true;
          trySettle();
        }, PIPE_GRACE_MS),
        setTimeout(() => {
          if (exit === null && !done) {
            this.log?.warn('execution leader survived SIGKILL; answering without its status', {
              pid: pgid,
              program: plan.program,
            });
            finish();
          }
        }, ABANDON_MS),
      );
      trySettle();
    };

    // Timeout and cancel end the group the same way: SIGTERM, SIGKILL after the grace.
    const terminate = (): void => {
      terminating = true;
      unpace();
      if (!signalGroup(pgid, 'SIGTERM')) {
        // Nothing of the group is left; only pipes held by escaped processes keep us here.
        onKill();
        return;
      }
      timers.push(setTimeout(onKill, this.config.exec.kill_grace_ms));
      trySettle();
    };
    const onTimeout = (): void => {
      if (terminating) {
        return;
      }
      timedOut = true;
      terminate();
    };
    const onCancel = (): void => {
      if (done || terminating) {
        return;
      }
      cancelled = true;
      terminate();
    };

    this.registry.started(pgid, hooks.executionId, onCancel);
    const onOutput = hooks.onOutput;
    const resumeTimers: Partial<Record<'stdout' | 'stderr', NodeJS.Timeout>> = {};
    const pace = (name: 'stdout' | 'stderr', pipe: ChildPipe, pauseMs: number | void) => {
      if (!pauseMs || terminating || done || resumeTimers[name]) {
        return;
      }
      pipe.pause();
      resumeTimers[name] = setTimeout(() => {
        resumeTimers[name] = undefined;
        pipe.resume();
      }, pauseMs);
    };
    unpace = () => {
      for (const [name, pipe] of [
        ['stdout', stdout],
        ['stderr', stderr],
      ] as const) {
        clearTimeout(resumeTimers[name]);
        resumeTimers[name] = undefined;
        pipe.resume();
      }
    };
    stdout.onData((chunk) => {
      out.push(chunk);
      pace('stdout', stdout, onOutput?.('stdout', chunk));
    });
    stderr.onData((chunk) => {
      err.push(chunk);
      pace('stderr', stderr, onOutput?.('stderr', chunk));
    });
    stdout.onClose(() => {
      outClosed = true;
      trySettle();
    });
    stderr.onClose(() => {
      errClosed = true;
      trySettle();
    });
    child.endStdin(plan.stdin);
    child.onExit((code, signal) => {
      exit = { code, signal };
      trySettle();
    });
    timers.push(setTimeout(onTimeout, plan.timeoutMs));
  }
}

function spawnError(plan: ExecPlan, err: unknown): AgentOpError {
  const e = err as NodeJS.ErrnoException;
  const program = JSON.stringify(plan.program);
  const cwd = JSON.stringify(plan.cwd);
  if (e.code === 'ENOENT') {
    return new AgentOpError(
      ErrorCode.EXEC_FAILED,
      `cannot run ${program}: not found (PATH=${plan.env.PATH ?? ''})`,
    );
  }
  if (e.code === 'EACCES') {
    return new AgentOpError(
      ErrorCode.EXEC_FAILED,
      `cannot run ${program}: permission denied (not executable by uid ${plan.identity.uid})`,
    );
  }
  return new AgentOpError(
    ErrorCode.EXEC_FAILED,
    `cannot run ${program} in cwd ${cwd}: ${e.code ?? 'error'}: ${e.message}`,
  );
}

// setpriv reports a program it cannot exec with 126/127 and its own message; that is a spawn
// failure, as it is without setpriv.
function setprivFailure(
  plan: ExecPlan,
  code: number | null,
  stderr: Uint8Array,
): AgentOpError | null {
  if (plan.identity.mode !== 'setpriv' || (code !== 126 && code !== 127)) {
    return null;
  }
  const text = Buffer.from(stderr).toString('utf8');
  // setpriv's own failure, or the helper shell's exec of the command ("lq-exec: 1: exec: …").
  if (
    !text.startsWith('setpriv: failed to execute') &&
    !(text.startsWith(`${HELPER_NAME}:`) && /\bexec\b/.test(text.split('\n')[0] ?? ''))
  ) {
    return null;
  }
  return new AgentOpError(
    ErrorCode.EXEC_FAILED,
    `cannot run ${JSON.stringify(plan.program)} as uid ${plan.identity.uid}: ${text.trim()}`,
  );
}
