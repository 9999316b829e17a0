// Execute on a Windows guest, with CreateProcess semantics: the agent builds the command line
// itself (command-line.ts) and spawns with windowsVerbatimArguments, `command` runs under
// `cmd.exe /d /s /c`, and a timeout or cancel kills the whole tree with `taskkill /T /F` (the
// command-line stand-in for a job object; WINDOWS.md). Run-as another account needs
// LogonUser/CreateProcessAsUser and is refused with UNSUPPORTED before anything starts.
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  ExecuteResponseSchema,
  type ExecuteRequest,
  type ExecuteResponse,
} from '@lq/proto';
import type { AgentConfig } from '../../config.js';
import { AgentOpError } from '../../errors.js';
import type { ExecHooks } from '../../exec/child-supervisor.js';
import { invalid, validateExecuteRequest } from '../../exec/exec-request.js';
import { OutputCapture } from '../../exec/output-capture.js';
import type { Logger } from '../../logger.js';
import type { ExecRunner } from '../platform.js';
import { cmdCommandLine, commandLine, quoteArg } from './command-line.js';
import { taskkillTreeArgv } from './windows-commands.js';

/**
 * What CreateProcess gets: the program, and the command line, which libuv assembles from argv0
 * and the rest verbatim (`${argv0} ${rest}`), so both are given already quoted.
 */
export interface WindowsSpawnPlan {
  file: string;
  argv0: string;
  rest: string;
  commandLine: string;
  program: string;
}

/** argv or command → the program and its command line, as the agent spawns them. */
export function planWindowsSpawn(request: ExecuteRequest, cmdExe: string): WindowsSpawnPlan {
  const [file, line] =
    request.argv.length > 0
      ? [request.argv[0]!, commandLine(request.argv)]
      : [cmdExe, cmdCommandLine(cmdExe, request.command)];
  const argv0 = quoteArg(file);
  return { file, argv0, rest: line.slice(argv0.length + 1), commandLine: line, program: file };
}

/** Refuses what needs Windows APIs the agent does not call yet. */
export function refuseWindowsRunAs(request: ExecuteRequest): void {
  if (request.runAsUser !== '' || request.runAsGroup !== '' || request.includeSupplementaryGroups) {
    throw new AgentOpError(
      ErrorCode.UNSUPPORTED,
      'run_as_user/run_as_group are not supported on Windows guests yet (needs LogonUser + CreateProcessAsUser; WINDOWS.md); commands run as the agent service account (LocalSystem)',
    );
  }
}

export class WindowsProcessRunner implements ExecRunner {
  private active = 0;
  private readonly running = new Map<number, ChildProcess>();
  private readonly cancels = new Map<string, () => void>();

  constructor(
    private readonly config: AgentConfig,
    private readonly log?: Logger,
  ) {}

  get activeCount(): number {
    return this.active;
  }

  async run(request: ExecuteRequest, hooks: ExecHooks = {}): Promise<ExecuteResponse> {
    if (hooks.executionId !== undefined && this.cancels.has(hooks.executionId)) {
      throw invalid(`execution_id ${hooks.executionId} is already running`);
    }
    const { timeoutMs, outputLimit } = validateExecuteRequest(request, this.config);
    refuseWindowsRunAs(request);
    const max = this.config.exec.max_concurrent;
    if (this.active >= max) {
      throw new AgentOpError(
        ErrorCode.BUSY,
        `exec.max_concurrent (${max}) executions are already running; retry later`,
      );
    }
    const plan = planWindowsSpawn(request, this.config.windows.cmd);
    const cwd = request.cwd || this.config.windows.default_cwd;
    try {
      if (!(await stat(cwd)).isDirectory()) {
        throw new Error('not a directory');
      }
    } catch (err) {
      throw new AgentOpError(
        ErrorCode.EXEC_FAILED,
        `cwd ${JSON.stringify(cwd)} is not usable: ${(err as Error).message}`,
      );
    }
    this.active++;
    try {
      return await this.spawnAndWait(plan, request, cwd, timeoutMs, outputLimit, hooks);
    } finally {
      this.active--;
    }
  }

  private spawnAndWait(
    plan: WindowsSpawnPlan,
    request: ExecuteRequest,
    cwd: string,
    timeoutMs: number,
    outputLimit: number,
    hooks: ExecHooks,
  ): Promise<ExecuteResponse> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      // Windows variables are case-insensitive: the request's replace the agent's by name.
      const env: Record<string, string> = {};
      const names = new Map<string, string>();
      // The service's own environment (SystemRoot, ProgramData… which Windows programs need),
      // Path from exec.path as on Linux, then the request's variables.
      for (const [k, v] of [
        ...Object.entries(process.env),
        ['Path', this.config.exec.path] as const,
        ...Object.entries(request.env),
      ]) {
        if (v === undefined) {
          continue;
        }
        const prior = names.get(k.toUpperCase());
        if (prior !== undefined) {
          delete env[prior];
        }
        names.set(k.toUpperCase(), k);
        env[k] = v;
      }
      let child: ChildProcess;
      try {
        // The command line is complete (argv[0] included): passed verbatim, nothing re-quotes it.
        child = spawn(plan.file, plan.rest === '' ? [] : [plan.rest], {
          argv0: plan.argv0,
          cwd,
          env,
          windowsVerbatimArguments: true,
          windowsHide: true,
          stdio: 'pipe',
        });
      } catch (err) {
        reject(
          new AgentOpError(
            ErrorCode.EXEC_FAILED,
            `cannot run ${plan.program}: ${(err as Error).message}`,
          ),
        );
        return;
      }
      const out = new OutputCapture(outputLimit);
      const errOut = new OutputCapture(outputLimit);
      let timedOut = false;
      let cancelled = false;
      const pid = child.pid ?? 0;
      const killTree = () => {
        const [file, ...args] = taskkillTreeArgv(this.config.windows.taskkill, pid);
        spawn(file!, args, { stdio: 'ignore', windowsHide: true }).on('error', (e) =>
          this.log?.warn('taskkill failed', { pid, error: e.message }),
        );
      };
      if (pid > 0) {
        this.running.set(pid, child);
      }
      const cancel = () => {
        cancelled = true;
        killTree();
      };
      if (hooks.executionId !== undefined) {
        this.cancels.set(hooks.executionId, cancel);
      }
      const timer = setTimeout(() => {
        timedOut = true;
        killTree();
      }, timeoutMs);
      child.stdout!.on('data', (d: Buffer) => {
        out.push(d);
        hooks.onOutput?.('stdout', d);
      });
      child.stderr!.on('data', (d: Buffer) => {
        errOut.push(d);
        hooks.onOutput?.('stderr', d);
      });
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(Buffer.from(request.stdin));
      const done = () => {
        clearTimeout(timer);
        this.running.delete(pid);
        if (hooks.executionId !== undefined) {
          this.cancels.delete(hooks.executionId);
        }
      };
      child.once('error', (err) => {
        done();
        reject(
          new AgentOpError(ErrorCode.EXEC_FAILED, `cannot run ${plan.program}: ${err.message}`),
        );
      });
      child.once('close', (code, signal) => {
        done();
        resolve(
          create(ExecuteResponseSchema, {
            exitCode: code ?? undefined,
            signal: signal ?? '',
            timedOut,
            cancelled,
            stdout: out.bytes(),
            stderr: errOut.bytes(),
            stdoutTruncated: out.truncated,
            stderrTruncated: errOut.truncated,
            stdoutTotalBytes: BigInt(out.totalBytes),
            stderrTotalBytes: BigInt(errOut.totalBytes),
            durationMs: Math.round(performance.now() - started),
            pid,
          }),
        );
      });
    });
  }

  cancel(executionId: string): boolean {
    const cancel = this.cancels.get(executionId);
    cancel?.();
    return cancel !== undefined;
  }

  killAll(): number {
    for (const pid of this.running.keys()) {
      const [file, ...args] = taskkillTreeArgv(this.config.windows.taskkill, pid);
      spawn(file!, args, { stdio: 'ignore', windowsHide: true }).on('error', () => undefined);
    }
    return this.running.size;
  }
}
