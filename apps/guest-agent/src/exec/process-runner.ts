import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { performance } from 'node:perf_hooks';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  ExecuteResponseSchema,
  firstUnsafeRunAsEnv,
  type ExecuteRequest,
  type ExecuteResponse,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import { HELPER_NAME, HELPER_SCRIPT, renderHelperEnv } from './helper-env.js';
import { OutputCapture } from './output-capture.js';
import { groupHasLiveMembers, signalGroup, waitGroupGone } from './process-group.js';
import { judgeRunAs } from './run-as-limits.js';
import type { UserResolver } from './user-resolver.js';

/** Who the child runs as, and how the agent gets it there. */
export interface ExecIdentity {
  /** none: the agent's own credentials; spawn: Node's uid/gid options; setpriv: with groups. */
  mode: 'none' | 'spawn' | 'setpriv';
  name: string;
  uid: number;
  gid: number;
  /** The supplementary groups the child gets (empty when cleared). */
  groups: number[];
  home: string;
  shell: string;
}

/** A validated execution, ready to spawn. */
export interface ExecPlan {
  file: string;
  args: string[];
  /** What to name in messages: argv[0] or the shell. */
  program: string;
  cwd: string;
  env: Record<string, string>;
  /** With setpriv: the environment for the helper's fd 3 (env is then empty). */
  helperEnv?: string;
  stdin: Uint8Array;
  timeoutMs: number;
  outputLimit: number;
  identity: ExecIdentity;
}

/** What a caller may hook into one execution. */
export interface ExecHooks {
  /** Registers the execution under this id, so cancel(id) can stop it. */
  executionId?: string;
  /** Every chunk of output as it arrives (before the capture cap). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Uint8Array) => void;
}

/** After the SIGKILL, how long pipes held by processes that left the group may stay open. */
const PIPE_GRACE_MS = 200;
/** After the SIGKILL, how long to wait for the group's members to be gone before answering. */
const GROUP_EXIT_WAIT_MS = 500;
/** ...and for init to reap the zombies of members orphaned by the leader's death. */
const GROUP_REAP_WAIT_MS = 100;
/** A leader that outlives SIGKILL this long (stuck in the kernel) is given up on. */
const ABANDON_MS = 5000;

function invalid(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.INVALID_REQUEST, message);
}

/** Checks the request's fields against the config; throws INVALID_REQUEST / TOO_LARGE. */
export function validateExecuteRequest(
  request: ExecuteRequest,
  config: AgentConfig,
): { timeoutMs: number; outputLimit: number } {
  const hasArgv = request.argv.length > 0;
  const hasCommand = request.command !== '';
  if (hasArgv === hasCommand) {
    throw invalid(
      `exactly one of argv or command must be set (got ${hasArgv ? 'both' : 'neither'})`,
    );
  }
  if (hasArgv && request.argv[0] === '') {
    throw invalid('argv[0] must name a program');
  }
  request.argv.forEach((arg, i) => {
    if (arg.includes('\0')) {
      throw invalid(`argv[${i}] contains a NUL byte`);
    }
  });
  if (request.command.includes('\0')) {
    throw invalid('command contains a NUL byte');
  }
  if (request.cwd !== '' && (!isAbsolute(request.cwd) || request.cwd.includes('\0'))) {
    throw invalid(`cwd must be an absolute path (got ${JSON.stringify(request.cwd)})`);
  }
  let envBytes = 0;
  for (const [key, value] of Object.entries(request.env)) {
    if (key === '' || key.includes('=') || key.includes('\0')) {
      throw invalid(
        `env key ${JSON.stringify(key)} is invalid: keys are non-empty, without "=" or NUL`,
      );
    }
    if (value.includes('\0')) {
      throw invalid(`env ${key} contains a NUL byte`);
    }
    envBytes += Buffer.byteLength(key) + Buffer.byteLength(value) + 2;
  }
  if (request.runAsUser !== '' || request.runAsGroup !== '') {
    const unsafe = firstUnsafeRunAsEnv(Object.keys(request.env));
    if (unsafe !== undefined) {
      throw invalid(
        `env ${unsafe} is refused with run_as_user/run_as_group: it steers the loader or libc of programs that start as root`,
      );
    }
  }
  if (envBytes > config.exec.max_env_bytes) {
    throw new AgentOpError(
      ErrorCode.TOO_LARGE,
      `env is ${envBytes} bytes, above exec.max_env_bytes ${config.exec.max_env_bytes}`,
    );
  }
  if (request.stdin.length > config.exec.max_stdin_bytes) {
    throw new AgentOpError(
      ErrorCode.TOO_LARGE,
      `stdin is ${request.stdin.length} bytes, above exec.max_stdin_bytes ${config.exec.max_stdin_bytes}`,
    );
  }
  const timeoutMs = request.timeoutMs === 0 ? config.exec.default_timeout_ms : request.timeoutMs;
  if (timeoutMs > config.exec.max_timeout_ms) {
    throw invalid(
      `timeout_ms ${timeoutMs} exceeds exec.max_timeout_ms ${config.exec.max_timeout_ms}`,
    );
  }
  const outputLimit =
    request.outputLimitBytes === 0 ? config.exec.output_limit_bytes : request.outputLimitBytes;
  if (outputLimit > config.exec.output_limit_max_bytes) {
    throw invalid(
      `output_limit_bytes ${outputLimit} exceeds exec.output_limit_max_bytes ${config.exec.output_limit_max_bytes}`,
    );
  }
  return { timeoutMs, outputLimit };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Runs executions (PROTOCOL.md §6 Execute): each child leads its own session and process group,
 * which the timeout signals as a whole; output is capped per stream while the pipes are drained.
 */
export class ProcessRunner {
  private active = 0;
  /** Process group ids of the children still running, for killAll(). */
  private readonly groups = new Set<number>();
  /** Running executions that have an id: how to cancel each. */
  private readonly cancels = new Map<string, () => void>();

  constructor(
    private readonly config: AgentConfig,
    private readonly users: UserResolver,
    private readonly log?: Logger,
  ) {}

  /** Executions admitted and not yet answered. */
  get activeCount(): number {
    return this.active;
  }

  /**
   * Validates, resolves the run-as identity, spawns and waits. Throws AgentOpError: BUSY,
   * INVALID_REQUEST, TOO_LARGE, USER_NOT_FOUND, GROUP_NOT_FOUND, EXEC_FAILED.
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
      return await this.execute(await this.plan(request), hooks);
    } finally {
      this.active--;
    }
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

  /** Everything that can fail before a process exists: fields, identity, cwd. */
  async plan(request: ExecuteRequest): Promise<ExecPlan> {
    const { timeoutMs, outputLimit } = validateExecuteRequest(request, this.config);
    const identity = await this.identity(request);
    const cwd = await this.workingDirectory(request.cwd, identity.home);
    const env = new Map<string, string>([
      ['PATH', this.config.exec.path],
      ['HOME', identity.home],
      ['USER', identity.name],
      ['LOGNAME', identity.name],
      ['SHELL', identity.shell],
      ['LANG', 'C.UTF-8'],
    ]);
    for (const [key, value] of Object.entries(request.env)) {
      env.set(key, value);
    }
    const shell = this.config.exec.shell;
    const argv = request.argv.length > 0 ? request.argv : [shell, '-c', request.command];
    let file = argv[0] ?? shell;
    let args = argv.slice(1);
    // fromEntries defines keys, so an "__proto__" key stays an ordinary variable.
    let childEnv: Record<string, string> = Object.fromEntries(env);
    let helperEnv: string | undefined;
    if (identity.mode === 'setpriv') {
      // Node can set uid and gid but not supplementary groups; setpriv does, as root, so it gets
      // an absolute path and an empty environment, and the caller's variables reach only the
      // command, through the helper shell's fd 3 (helper-env.ts). setpriv and the shell exec in
      // place, so the pid stays the group leader.
      helperEnv = renderHelperEnv(childEnv);
      childEnv = {};
      file = this.config.commands.setpriv;
      args = [
        `--reuid=${identity.uid}`,
        `--regid=${identity.gid}`,
        identity.groups.length > 0 ? `--groups=${identity.groups.join(',')}` : '--clear-groups',
        '--',
        shell,
        '-c',
        HELPER_SCRIPT,
        HELPER_NAME,
        ...argv,
      ];
    }
    return {
      file,
      args,
      program: argv[0] ?? shell,
      cwd,
      env: childEnv,
      helperEnv,
      stdin: request.stdin,
      timeoutMs,
      outputLimit,
      identity,
    };
  }

  /**
   * Resolves whom the command runs as and judges that identity against the request's
   * RunAsLimits (NOT_ALLOWED before anything is spawned).
   */
  private async identity(request: ExecuteRequest): Promise<ExecIdentity> {
    const ownUid = process.getuid?.() ?? 0;
    const limits = request.limits;
    if (request.runAsUser === '' && request.runAsGroup === '') {
      const self = await this.users.lookupUser(String(ownUid));
      const gid = process.getgid?.() ?? 0;
      const groups = process.getgroups?.() ?? [];
      judgeRunAs(limits, { name: self.name, uid: ownUid, gid, groups }, '', [gid, ...groups]);
      return {
        mode: 'none',
        name: self.name,
        uid: ownUid,
        gid,
        groups,
        home: self.home,
        shell: self.shell,
      };
    }
    // The group rule needs the user's own groups even when the process will not keep them.
    const groupRule = limits !== undefined && !limits.anyGroup && request.runAsGroup !== '';
    const user = await this.users.resolve(
      request.runAsUser === '' ? String(ownUid) : request.runAsUser,
      request.runAsGroup,
      { supplementaryGroups: request.includeSupplementaryGroups || groupRule },
    );
    // libuv clears the supplementary groups whenever it sets a uid or gid.
    const groups = request.includeSupplementaryGroups ? user.groups : [];
    judgeRunAs(
      limits,
      { name: user.name, uid: user.uid, gid: user.gid, groups },
      request.runAsGroup,
      user.groups,
    );
    return {
      mode: request.includeSupplementaryGroups ? 'setpriv' : 'spawn',
      name: user.name,
      uid: user.uid,
      gid: user.gid,
      groups,
      home: user.home,
      shell: user.shell,
    };
  }

  private async workingDirectory(requested: string, home: string): Promise<string> {
    if (requested === '') {
      return (await isDirectory(home)) ? home : '/';
    }
    let isDir: boolean;
    try {
      isDir = (await stat(requested)).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new AgentOpError(
        ErrorCode.EXEC_FAILED,
        `cwd ${JSON.stringify(requested)} is not usable: ${code}`,
      );
    }
    if (!isDir) {
      throw new AgentOpError(
        ErrorCode.EXEC_FAILED,
        `cwd ${JSON.stringify(requested)} is not a directory`,
      );
    }
    return requested;
  }

  private execute(plan: ExecPlan, hooks: ExecHooks = {}): Promise<ExecuteResponse> {
    return new Promise<ExecuteResponse>((resolve, reject) => {
      const { identity } = plan;
      const started = performance.now();
      const options: SpawnOptions = {
        cwd: plan.cwd,
        env: plan.env,
        detached: true,
        stdio: plan.helperEnv === undefined ? 'pipe' : ['pipe', 'pipe', 'pipe', 'pipe'],
      };
      if (identity.mode === 'spawn') {
        options.uid = identity.uid;
        options.gid = identity.gid;
      }
      let child: ChildProcess;
      try {
        child = spawn(plan.file, plan.args, options);
      } catch (err) {
        reject(this.spawnError(plan, err));
        return;
      }
      const { stdin, stdout, stderr } = child;
      if (stdin === null || stdout === null || stderr === null) {
        reject(new AgentOpError(ErrorCode.INTERNAL, 'spawn returned no stdio pipes'));
        return;
      }
      const envPipe = plan.helperEnv === undefined ? undefined : child.stdio[3];
      if (envPipe && 'write' in envPipe) {
        // EPIPE when the helper died first: its exit status reports that.
        envPipe.on('error', () => undefined);
        envPipe.end(plan.helperEnv);
      }
      const pgid = child.pid ?? 0;
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

      const cleanup = (): void => {
        done = true;
        timers.forEach(clearTimeout);
        this.groups.delete(pgid);
        if (hooks.executionId !== undefined) {
          this.cancels.delete(hooks.executionId);
        }
        stdin.destroy();
        stdout.destroy();
        stderr.destroy();
        envPipe?.destroy();
      };

      const finish = (): void => {
        if (done) {
          return;
        }
        cleanup();
        const failed = this.setprivFailure(plan, exit?.code ?? null, err.bytes());
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

      child.on('error', (e) => {
        // After a successful spawn 'error' only reports failed kill()s, which this code never does.
        if (child.pid === undefined && !done) {
          cleanup();
          reject(this.spawnError(plan, e));
        }
      });
      if (child.pid === undefined) {
        return;
      }
      this.groups.add(pgid);
      if (hooks.executionId !== undefined) {
        this.cancels.set(hooks.executionId, onCancel);
      }
      const onOutput = hooks.onOutput;
      stdout.on('data', (chunk: Buffer) => {
        out.push(chunk);
        onOutput?.('stdout', chunk);
      });
      stderr.on('data', (chunk: Buffer) => {
        err.push(chunk);
        onOutput?.('stderr', chunk);
      });
      stdout.on('error', () => undefined);
      stderr.on('error', () => undefined);
      stdout.on('close', () => {
        outClosed = true;
        trySettle();
      });
      stderr.on('close', () => {
        errClosed = true;
        trySettle();
      });
      // EPIPE when the child exits or closes stdin without reading it all: not an error.
      stdin.on('error', () => undefined);
      if (plan.stdin.length > 0) {
        stdin.end(plan.stdin);
      } else {
        stdin.end();
      }
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        trySettle();
      });
      timers.push(setTimeout(onTimeout, plan.timeoutMs));
    });
  }

  private spawnError(plan: ExecPlan, err: unknown): AgentOpError {
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
  private setprivFailure(
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
}
