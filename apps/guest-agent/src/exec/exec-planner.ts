import { stat } from 'node:fs/promises';
import { ErrorCode, type ExecuteRequest } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { validateExecuteRequest } from './exec-request.js';
import { HELPER_NAME, HELPER_SCRIPT, renderHelperEnv } from './helper-env.js';
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

/**
 * How long a home directory found to be a directory is trusted as the default working directory
 * without another stat(2): one exec after another would otherwise each make a trip through the
 * thread pool for it (the stat stays asynchronous, as a home on a network filesystem may not
 * answer). One removed meanwhile fails that exec's spawn instead of falling back to "/".
 */
export const HOME_RECHECK_MS = 1000;
/** Homes remembered at once (one per run-as user in use). */
const HOMES_KEPT = 64;

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Turns a request into an ExecPlan: its fields checked, the run-as identity resolved and judged
 * against the request's RunAsLimits, the working directory and environment settled, and the
 * setpriv wrapping chosen when supplementary groups are kept. Everything here can fail, and all
 * of it happens before a process exists.
 */
export class ExecPlanner {
  /** Home → performance.now() when it was last found to be a directory. */
  private readonly homes = new Map<string, number>();

  constructor(
    private readonly config: AgentConfig,
    private readonly users: UserResolver,
    private readonly homeRecheckMs = HOME_RECHECK_MS,
  ) {}

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
      const seen = this.homes.get(home);
      if (seen !== undefined && performance.now() - seen < this.homeRecheckMs) {
        return home;
      }
      if (!(await isDirectory(home))) {
        this.homes.delete(home);
        return '/';
      }
      if (this.homeRecheckMs > 0) {
        if (this.homes.size >= HOMES_KEPT && !this.homes.has(home)) {
          this.homes.clear();
        }
        this.homes.set(home, performance.now());
      }
      return home;
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
}
