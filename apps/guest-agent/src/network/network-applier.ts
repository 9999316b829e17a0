// The safe apply of PROTOCOL.md §11, like `netplan try`: the previous files are written to a
// state file before anything changes, the new ones are written and applied, and unless
// network.confirm names the apply before its deadline the previous files are restored and
// applied again. An agent that starts and finds the state file (restarted, or the guest
// rebooted, during the window) rolls back the same way: a configuration that cut the guest off
// must not outlive the agent that applied it.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import {
  describeResult,
  isExecutable,
  runCommand,
  succeeded,
  type CommandResult,
} from '../system/run-command.js';
import type { BackendKind, FileSet, NetworkBackendDriver } from './backend.js';
import { IfupdownBackend } from './ifupdown.backend.js';
import type { NetIface } from '@lq/proto';
import { NetworkManagerBackend } from './network-manager.backend.js';
import { NetworkdBackend } from './networkd.backend.js';
import { NetplanBackend } from './netplan.backend.js';

export type ApplyState = 'pending' | 'confirmed' | 'rolled_back';

export interface ApplyStatus {
  applyId: string;
  state: ApplyState;
  deadline: number;
  reason: string;
  changedAt: number;
  interfaces: string[];
}

/** What the state file keeps of a pending apply. */
interface PendingFile {
  version: 1;
  apply_id: string;
  backend: BackendKind;
  interfaces: string[];
  deadline: number;
  /** The owned files before the apply (null: absent). */
  previous: Record<string, string | null>;
  /** The owned files the apply wrote. */
  applied: Record<string, string | null>;
}

export interface NetworkReading {
  backend: BackendKind | undefined;
  interfaces: NetIface[];
  files: string[];
  last: ApplyStatus | undefined;
}

export interface ConfigureResult {
  applyId: string;
  backend: BackendKind;
  files: { path: string; content: string }[];
  previous: NetIface[];
  deadline: number;
  dryRun: boolean;
}

export interface ApplierDeps {
  run(argv: string[], timeoutMs: number): Promise<CommandResult>;
  now(): number;
}

const realDeps: ApplierDeps = {
  run: (argv, timeoutMs) => runCommand(argv, { timeoutMs }),
  now: () => Date.now(),
};

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      return null;
    }
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await readOrNull(path).catch(() => '')) !== null;
}

async function dirExists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Writes a file whole (temp file + rename), or removes it for null. */
async function putFile(path: string, content: string | null): Promise<void> {
  if (content === null) {
    await rm(path, { force: true });
    return;
  }
  await mkdir(dirname(path), { recursive: true });
  // netplan and NetworkManager refuse (or warn about) files others can read.
  const mode = /\.(ya?ml|nmconnection)$/.test(path) ? 0o600 : 0o644;
  const temp = `${path}.lq-tmp`;
  await writeFile(temp, content, { mode });
  await rename(temp, path);
}

export class NetworkApplier {
  private pending: { file: PendingFile; timer: NodeJS.Timeout } | undefined;
  private last: ApplyStatus | undefined;
  /** configure, confirm and rollbacks one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly deps: ApplierDeps = realDeps,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  driver(kind: BackendKind): NetworkBackendDriver {
    const n = this.config.network;
    const c = this.config.commands;
    switch (kind) {
      case 'netplan':
        return new NetplanBackend({ netplan_dir: n.netplan_dir, netplan: c.netplan });
      case 'networkmanager':
        return new NetworkManagerBackend({
          nm_connections_dir: n.nm_connections_dir,
          nmcli: c.nmcli,
        });
      case 'networkd':
        return new NetworkdBackend({ networkd_dir: n.networkd_dir, networkctl: c.networkctl });
      case 'ifupdown':
        return new IfupdownBackend({
          interfaces_file: n.interfaces_file,
          ifup: c.ifup,
          ifdown: c.ifdown,
        });
    }
  }

  /** The configured backend, or the first detected (PROTOCOL.md §11's order), or undefined. */
  async detect(): Promise<NetworkBackendDriver | undefined> {
    const n = this.config.network;
    const c = this.config.commands;
    if (n.backend !== 'auto') {
      return this.driver(n.backend);
    }
    if ((await isExecutable(c.netplan)) && (await dirExists(n.netplan_dir))) {
      return this.driver('netplan');
    }
    if (await isExecutable(c.nmcli)) {
      const r = await this.deps.run([c.nmcli, '-t', '-f', 'RUNNING', 'general'], 5000);
      if (succeeded(r) && r.stdout.trim() === 'running') {
        return this.driver('networkmanager');
      }
    }
    if ((await isExecutable(c.networkctl)) && (await dirExists(n.networkd_dir))) {
      return this.driver('networkd');
    }
    if ((await isExecutable(c.ifup)) && (await exists(n.interfaces_file))) {
      return this.driver('ifupdown');
    }
    return undefined;
  }

  private async readFiles(paths: readonly string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    for (const p of paths) {
      out.set(p, await readOrNull(p));
    }
    return out;
  }

  async get(): Promise<NetworkReading> {
    const driver = await this.detect();
    if (!driver) {
      return { backend: undefined, interfaces: [], files: [], last: this.status() };
    }
    const paths = await driver.configFiles();
    const files = await this.readFiles(paths);
    return {
      backend: driver.kind,
      interfaces: driver.parse(files),
      files: paths.filter((p) => files.get(p) !== null),
      last: this.status(),
    };
  }

  /** The pending apply, or how the last one ended. */
  status(): ApplyStatus | undefined {
    if (this.pending) {
      const f = this.pending.file;
      return {
        applyId: f.apply_id,
        state: 'pending',
        deadline: f.deadline,
        reason: '',
        changedAt: this.last?.changedAt ?? this.deps.now(),
        interfaces: f.interfaces,
      };
    }
    return this.last;
  }

  configure(
    desired: NetIface[],
    confirmTimeoutMs: number,
    dryRun: boolean,
  ): Promise<ConfigureResult> {
    return this.serial(() => this.doConfigure(desired, confirmTimeoutMs, dryRun));
  }

  private async doConfigure(
    desired: NetIface[],
    confirmTimeoutMs: number,
    dryRun: boolean,
  ): Promise<ConfigureResult> {
    const n = this.config.network;
    const timeout = confirmTimeoutMs || n.confirm_timeout_ms;
    if (timeout < 1000 || timeout > n.max_confirm_timeout_ms) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `confirm_timeout_ms must be 0 (default ${n.confirm_timeout_ms}) or 1000-${n.max_confirm_timeout_ms} (network.max_confirm_timeout_ms); got ${confirmTimeoutMs}`,
      );
    }
    if (this.pending && !dryRun) {
      throw new AgentOpError(
        ErrorCode.ALREADY_EXISTS,
        `apply ${this.pending.file.apply_id} is waiting for its confirmation until ${new Date(this.pending.file.deadline).toISOString()}; confirm it or let it roll back first`,
      );
    }
    const driver = await this.detect();
    if (!driver) {
      throw new AgentOpError(
        ErrorCode.NOT_FOUND,
        'no network stack found (netplan, NetworkManager, systemd-networkd, ifupdown); set network.backend in the agent config',
      );
    }
    const names = desired.map((d) => d.name);
    const all = await this.readFiles(await driver.configFiles());
    const owned = await this.readFiles(driver.ownedPaths(names));
    for (const [p, c] of owned) {
      all.set(p, c);
    }
    const previous = driver.parse(all).filter((i) => names.includes(i.name));
    const rendered = driver.render(desired, owned);
    const files = [...rendered]
      .filter((e): e is [string, string] => e[1] !== null)
      .map(([path, content]) => ({ path, content }));
    if (dryRun) {
      return { applyId: '', backend: driver.kind, files, previous, deadline: 0, dryRun };
    }
    const file: PendingFile = {
      version: 1,
      apply_id: randomUUID(),
      backend: driver.kind,
      interfaces: names,
      deadline: this.deps.now() + timeout,
      previous: Object.fromEntries(owned),
      applied: Object.fromEntries(rendered),
    };
    // The way back is on disk before anything changes.
    await putFile(n.state_file, `${JSON.stringify(file, null, 2)}\n`);
    await this.runAll(driver.down(names, owned), false);
    for (const [path, content] of rendered) {
      await putFile(path, content);
    }
    const failure = await this.runAll(driver.up(names, rendered), true);
    if (failure) {
      await this.rollback(file, `applying failed: ${failure}`);
      throw new AgentOpError(
        ErrorCode.IO_ERROR,
        `applying the ${driver.kind} configuration failed (${failure}); the previous configuration was restored`,
      );
    }
    this.arm(file);
    this.log.info('network configuration applied; waiting for confirmation', {
      applyId: file.apply_id,
      backend: driver.kind,
      interfaces: names,
      deadline: new Date(file.deadline).toISOString(),
    });
    return {
      applyId: file.apply_id,
      backend: driver.kind,
      files,
      previous,
      deadline: file.deadline,
      dryRun,
    };
  }

  private arm(file: PendingFile): void {
    const timer = setTimeout(
      () => {
        void this.serial(async () => {
          if (this.pending?.file.apply_id === file.apply_id) {
            await this.rollback(file, 'confirmation deadline passed');
          }
        }).catch((err: unknown) =>
          this.log.error('network rollback failed', { error: (err as Error).message }),
        );
      },
      Math.max(0, file.deadline - this.deps.now()),
    );
    timer.unref?.();
    this.pending = { file, timer };
    this.last = undefined;
  }

  confirm(applyId: string): Promise<ApplyStatus> {
    return this.serial(async () => {
      if (this.pending?.file.apply_id === applyId) {
        clearTimeout(this.pending.timer);
        const f = this.pending.file;
        this.pending = undefined;
        await rm(this.config.network.state_file, { force: true });
        this.last = {
          applyId,
          state: 'confirmed',
          deadline: f.deadline,
          reason: '',
          changedAt: this.deps.now(),
          interfaces: f.interfaces,
        };
        this.log.info('network configuration confirmed', { applyId });
        return this.last;
      }
      if (this.last?.applyId === applyId) {
        return this.last;
      }
      throw new AgentOpError(ErrorCode.NOT_FOUND, `no network apply ${applyId} is known`);
    });
  }

  /** On start: an apply left pending by an earlier agent is rolled back. */
  async restore(): Promise<void> {
    const text = await readOrNull(this.config.network.state_file).catch(() => null);
    if (text === null) {
      return;
    }
    let file: PendingFile;
    try {
      file = JSON.parse(text) as PendingFile;
      if (file.version !== 1 || typeof file.apply_id !== 'string') {
        throw new Error('unknown state file version');
      }
    } catch (err) {
      this.log.error('network state file unreadable; removed', {
        file: this.config.network.state_file,
        error: (err as Error).message,
      });
      await rm(this.config.network.state_file, { force: true });
      return;
    }
    await this.serial(() => this.rollback(file, 'agent restarted before confirmation'));
  }

  private async rollback(file: PendingFile, reason: string): Promise<void> {
    // Reported as pending until the previous files are back.
    if (this.pending?.file.apply_id === file.apply_id) {
      clearTimeout(this.pending.timer);
    }
    const driver = this.driver(file.backend);
    const applied: FileSet = new Map(Object.entries(file.applied));
    const previous: FileSet = new Map(Object.entries(file.previous));
    await this.runAll(driver.down(file.interfaces, applied), false);
    for (const [path, content] of previous) {
      await putFile(path, content);
    }
    const failure = await this.runAll(driver.up(file.interfaces, previous), false);
    await rm(this.config.network.state_file, { force: true });
    this.pending = undefined;
    this.last = {
      applyId: file.apply_id,
      state: 'rolled_back',
      deadline: file.deadline,
      reason: failure ? `${reason}; re-applying the previous configuration: ${failure}` : reason,
      changedAt: this.deps.now(),
      interfaces: file.interfaces,
    };
    this.log.warn('network configuration rolled back', {
      applyId: file.apply_id,
      reason: this.last.reason,
    });
  }

  /** Runs commands in order; returns the first failure's description ('' when none). */
  private async runAll(commands: string[][], stopOnFailure: boolean): Promise<string> {
    let first = '';
    for (const argv of commands) {
      const r = await this.deps.run(argv, this.config.network.command_timeout_ms);
      if (!succeeded(r)) {
        const what = `${argv.join(' ')}: ${describeResult(r)}${r.stderr.trim() ? `: ${r.stderr.trim().slice(0, 300)}` : ''}`;
        this.log.warn('network command failed', { command: argv.join(' '), result: what });
        first ||= what;
        if (stopOnFailure) {
          return first;
        }
      }
    }
    return first;
  }

  /** Stops the timer; a pending apply stays on disk and the next agent rolls it back. */
  stop(): void {
    if (this.pending) {
      clearTimeout(this.pending.timer);
    }
  }
}
