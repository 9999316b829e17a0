import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  ErrorCode,
  HookResultSchema,
  QuiesceResponseSchema,
  QuiesceStatusResponseSchema,
  ThawResponseSchema,
  type HookResult,
  type QuiesceResponse,
  type QuiesceStatusResponse,
  type ThawResponse,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import {
  describeResult,
  runCommand,
  succeeded,
  type CommandResult,
} from '../system/run-command.js';
import { freezableMounts, readMounts } from './mounts.js';

interface FrozenState {
  mounts: string[];
  frozenAt: number;
  deadline: number;
}

function hookResult(name: string, phase: string, r: CommandResult): HookResult {
  return create(HookResultSchema, {
    name,
    phase,
    exitCode: r.exitCode ?? undefined,
    signal: r.signal,
    timedOut: r.timedOut,
    durationMs: r.durationMs,
  });
}

/**
 * Filesystem quiescing (the seed's §7.1, made safe): pre-freeze hooks in ascending name order,
 * then fsfreeze on the mounts (nested ones first), an auto-thaw watchdog that fires when
 * timeout_seconds pass without a Thaw — restored from a state file on tmpfs when the agent
 * restarts — and on thaw the mounts in mount order, then post-thaw hooks in descending order.
 * A failing or slow hook, or a mount that will not freeze, undoes everything and runs the
 * post-thaw hooks of the hooks that ran with `freezefail` (VMware's convention). While frozen
 * the agent logs nothing (its logs could block on a frozen filesystem) and serves only ping,
 * status and thaw.
 */
export class Quiescer {
  private state: FrozenState | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private lastAutoThaw: number | undefined;
  private busy = false;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
  ) {}

  get frozen(): boolean {
    return this.state !== undefined;
  }

  /** At agent start: a freeze left by an earlier agent is thawed now or at its deadline. */
  async restore(): Promise<void> {
    let saved: FrozenState;
    try {
      saved = JSON.parse(await readFile(this.config.quiesce.state_file, 'utf8')) as FrozenState;
    } catch {
      return;
    }
    if (!Array.isArray(saved.mounts) || typeof saved.deadline !== 'number') {
      await rm(this.config.quiesce.state_file, { force: true });
      return;
    }
    this.state = saved;
    this.log.setMuted(true);
    const left = saved.deadline - Date.now();
    if (left <= 0) {
      await this.thaw('watchdog');
    } else {
      this.arm(left);
    }
  }

  status(): QuiesceStatusResponse {
    return create(QuiesceStatusResponseSchema, {
      frozen: this.frozen,
      mountPoints: this.state?.mounts ?? [],
      frozenAt: this.state ? timestampFromMs(this.state.frozenAt) : undefined,
      thawDeadline: this.state ? timestampFromMs(this.state.deadline) : undefined,
      lastAutoThaw: this.lastAutoThaw ? timestampFromMs(this.lastAutoThaw) : undefined,
    });
  }

  async quiesce(mountPoints: string[], timeoutSeconds: number): Promise<QuiesceResponse> {
    const q = this.config.quiesce;
    const seconds = timeoutSeconds || q.default_timeout_seconds;
    if (seconds > q.max_timeout_seconds) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `timeout_seconds ${seconds} exceeds quiesce.max_timeout_seconds ${q.max_timeout_seconds}`,
      );
    }
    if (this.frozen) {
      throw new AgentOpError(
        ErrorCode.BUSY,
        `already frozen (${this.state!.mounts.join(', ')}); thaw first`,
      );
    }
    if (this.busy) {
      throw new AgentOpError(ErrorCode.BUSY, 'a freeze or thaw is under way');
    }
    this.busy = true;
    try {
      const targets = await this.targets(mountPoints);
      const hooks: HookResult[] = [];
      const ran: string[] = [];
      for (const name of await this.hooks(q.pre_freeze_dir, 'ascending')) {
        ran.push(name);
        const r = await runCommand([join(q.pre_freeze_dir, name), 'freeze'], {
          timeoutMs: q.hook_timeout_ms,
        });
        hooks.push(hookResult(name, 'freeze', r));
        if (!succeeded(r)) {
          const undone = await this.postThaw(ran, 'freezefail');
          throw new AgentOpError(
            ErrorCode.EXEC_FAILED,
            `pre-freeze hook ${name} failed (${describeResult(r)}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 200)}` : ''}); nothing was frozen${undone.length ? `; ran post-thaw ${undone.map((h) => `${h.name} (${h.timedOut ? 'timed out' : `exit ${h.exitCode ?? h.signal}`})`).join(', ')} with freezefail` : ''}`,
          );
        }
      }
      const now = Date.now();
      const state: FrozenState = { mounts: targets, frozenAt: now, deadline: now + seconds * 1000 };
      // Written first (on tmpfs): an agent that dies mid-freeze still thaws on its restart.
      await mkdir(dirname(q.state_file), { recursive: true });
      await writeFile(q.state_file, JSON.stringify(state));
      this.state = state;
      this.log.setMuted(true);
      this.arm(seconds * 1000);
      const frozen: string[] = [];
      for (const m of [...targets].reverse()) {
        const r = await runCommand([...this.config.commands.fsfreeze, '--freeze', m], {
          timeoutMs: q.hook_timeout_ms,
        });
        if (!succeeded(r)) {
          for (const f of [...frozen].reverse()) {
            await runCommand([...this.config.commands.fsfreeze, '--unfreeze', f], {
              timeoutMs: q.hook_timeout_ms,
            });
          }
          this.disarm();
          this.state = undefined;
          await rm(q.state_file, { force: true });
          this.log.setMuted(false);
          const undone = await this.postThaw(ran, 'freezefail');
          throw new AgentOpError(
            ErrorCode.IO_ERROR,
            `cannot freeze ${m} (${describeResult(r)}: ${r.stderr.trim().slice(0, 200)}); thawed ${frozen.length} already frozen${undone.length ? `, ran ${undone.length} post-thaw hooks with freezefail` : ''}`,
          );
        }
        frozen.push(m);
      }
      return create(QuiesceResponseSchema, {
        frozen: targets,
        hooks,
        thawDeadline: timestampFromMs(state.deadline),
      });
    } finally {
      this.busy = false;
    }
  }

  /** Thaws (the request's, or the watchdog's); thawing when nothing is frozen is not an error. */
  async thaw(reason: 'request' | 'watchdog'): Promise<ThawResponse> {
    const state = this.state;
    if (!state) {
      return create(ThawResponseSchema, { wasFrozen: false });
    }
    this.disarm();
    const q = this.config.quiesce;
    const problems: string[] = [];
    for (const m of state.mounts) {
      const r = await runCommand([...this.config.commands.fsfreeze, '--unfreeze', m], {
        timeoutMs: q.hook_timeout_ms,
      });
      // Not frozen (EINVAL) is what a thaw after a restart or a manual thaw finds: fine.
      if (!succeeded(r) && !/invalid argument/i.test(r.stderr)) {
        problems.push(`${m}: ${describeResult(r)} ${r.stderr.trim().slice(0, 200)}`);
      }
    }
    // Recorded before the state clears, so a status never shows thawed without its cause.
    if (reason === 'watchdog') {
      this.lastAutoThaw = Date.now();
    }
    this.state = undefined;
    await rm(q.state_file, { force: true });
    this.log.setMuted(false);
    if (reason === 'watchdog') {
      this.log.warn('auto-thaw: no thaw came within the timeout', { mounts: state.mounts });
    }
    if (problems.length > 0) {
      this.log.error('thaw problems', { problems });
    }
    const hooks = await this.postThaw(await this.hooks(q.post_thaw_dir, 'ascending'), 'thaw');
    return create(ThawResponseSchema, { thawed: state.mounts, hooks, wasFrozen: true });
  }

  /** Post-thaw hooks of these names that exist, in descending name order. */
  private async postThaw(names: string[], phase: 'thaw' | 'freezefail'): Promise<HookResult[]> {
    const q = this.config.quiesce;
    const present = new Set(await this.hooks(q.post_thaw_dir, 'ascending'));
    const results: HookResult[] = [];
    for (const name of [...names].sort().reverse()) {
      if (!present.has(name)) {
        continue;
      }
      const r = await runCommand([join(q.post_thaw_dir, name), phase], {
        timeoutMs: q.hook_timeout_ms,
      });
      results.push(hookResult(name, phase, r));
      if (!succeeded(r)) {
        this.log.warn('post-thaw hook failed', { hook: name, result: describeResult(r) });
      }
    }
    return results;
  }

  /** Executable regular files of a hook directory, by name (none when it does not exist). */
  private async hooks(dir: string, _order: 'ascending'): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const name of names.sort()) {
      if (name.startsWith('.') || name.endsWith('~') || name.endsWith('.dpkg-old')) {
        continue;
      }
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s?.isFile() && (s.mode & 0o111) !== 0) {
        out.push(name);
      }
    }
    return out;
  }

  /** The mount points to freeze, in mount order, checked and deduplicated. */
  private async targets(requested: string[]): Promise<string[]> {
    const mounts = await readMounts(this.config.quiesce.mounts_file);
    if (requested.length === 0) {
      const found = freezableMounts(mounts, this.config.quiesce.freezable_types).map(
        (m) => m.mountPoint,
      );
      if (found.length === 0) {
        throw new AgentOpError(ErrorCode.NOT_FOUND, 'no freezable local filesystem is mounted');
      }
      return found;
    }
    const wanted = new Set<string>();
    for (const p of requested) {
      const norm = p.length > 1 ? p.replace(/\/+$/, '') : p;
      const m = [...mounts].reverse().find((x) => x.mountPoint === norm);
      if (!norm.startsWith('/') || !m) {
        throw new AgentOpError(ErrorCode.INVALID_REQUEST, `${p} is not a mount point`);
      }
      if (m.readOnly) {
        throw new AgentOpError(ErrorCode.INVALID_REQUEST, `${p} is mounted read-only`);
      }
      wanted.add(norm);
    }
    return mounts
      .map((m) => m.mountPoint)
      .filter((p, i, all) => wanted.has(p) && all.indexOf(p) === i);
  }

  private arm(ms: number): void {
    this.disarm();
    this.watchdog = setTimeout(() => {
      void this.thaw('watchdog');
    }, ms);
  }

  private disarm(): void {
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  /** Stops the watchdog timer (agent shutdown): the state file keeps the freeze for the next. */
  stop(): void {
    this.disarm();
  }
}
