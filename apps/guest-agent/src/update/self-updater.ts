// Self-update in the guest (PROTOCOL.md §10): stages the new executable from chunks, verifies
// target, version, size, sha256 and the release signature, keeps the running executable as
// `.previous`, swaps atomically, and hands over to the watchdog (update/watchdog.ts), which
// restarts the agent and restores the previous one unless the new agent confirms in time.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import {
  chmod,
  copyFile,
  link,
  mkdir,
  open,
  rename,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  AgentUpdateResponseSchema,
  ErrorCode,
  compareVersions,
  keyListStatement,
  parseKeyList,
  releaseStatement,
  verifiedBy,
  type AgentUpdateRequest,
  type AgentUpdateResponse,
  type AgentUpdateResult,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';

import {
  readUpdateState,
  stateFileIn,
  updateResultOf,
  writeUpdateState,
  type UpdateState,
} from './update-state.js';

const UPDATE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const KEY_LIST_FILE = 'release-keys.json';

/** How this process was started and how it ends: what the swap and the restart need. */
export interface UpdateHost {
  version: string;
  target: string;
  /** The file an update replaces; undefined: this agent cannot replace itself (sim-host). */
  executable: string | undefined;
  /** Program and arguments that start the agent again (re-exec mode). */
  relaunch: string[];
  /** Program and arguments that run `update-watchdog` from a given (the previous) executable. */
  watchdog(previous: string, stateFile: string): string[];
  /** Release keys built into this executable. */
  builtInKeys: readonly string[];
  /** Ends this process (re-exec mode), after the commit's reply is written. */
  exit(): void;
}

interface Staging {
  id: string;
  path: string;
  size: number;
  received: number;
  file: FileHandle;
  hash: ReturnType<typeof createHash>;
  idle: NodeJS.Timeout;
}

export class SelfUpdater {
  private staging: Staging | undefined;
  private committing = false;
  private readonly stateFile: string;

  constructor(
    private readonly config: AgentConfig,
    private readonly host: UpdateHost,
    private readonly log: Logger,
  ) {
    this.stateFile = stateFileIn(config.update.state_dir);
  }

  /**
   * How the last update ended (AgentInfo.last_update), if there was one. An update waiting for
   * this very version is reported `ok`: the AgentReady that carries it is what confirms it.
   */
  lastUpdate(): AgentUpdateResult | undefined {
    const state = readUpdateState(this.stateFile);
    if (!state) {
      return undefined;
    }
    return updateResultOf(
      state.phase === 'pending' && state.to_version === this.host.version
        ? { ...state, phase: 'confirmed' }
        : state,
    );
  }

  /**
   * Called once this agent has written an AgentReady: an update waiting for this very version
   * is confirmed, so the watchdog leaves it in place.
   */
  readySent(): void {
    const state = readUpdateState(this.stateFile);
    if (state?.phase === 'pending' && state.to_version === this.host.version) {
      writeUpdateState(this.stateFile, {
        ...state,
        phase: 'confirmed',
        at: new Date().toISOString(),
      });
      this.log.info('update confirmed', { update: state.update_id, version: state.to_version });
    }
  }

  async handle(
    req: AgentUpdateRequest,
    afterReply: (fn: () => void) => void,
  ): Promise<AgentUpdateResponse> {
    if (req.status) {
      const state = readUpdateState(this.stateFile);
      return create(AgentUpdateResponseSchema, {
        updateId: req.updateId,
        state: state?.phase === 'pending' ? 'pending' : 'idle',
        version: this.host.version,
        lastUpdate: this.lastUpdate(),
      });
    }
    if (!UPDATE_ID.test(req.updateId)) {
      throw invalid('update_id must be 1-64 letters, digits, _ or -');
    }
    if (req.abort) {
      if (this.staging?.id === req.updateId) {
        await this.drop();
      }
      return create(AgentUpdateResponseSchema, { updateId: req.updateId, state: 'aborted' });
    }
    if (this.host.executable === undefined) {
      throw new AgentOpError(
        ErrorCode.NOT_ALLOWED,
        'this agent shares its process with others (sim-host) and cannot replace its executable',
      );
    }
    if (this.committing) {
      throw new AgentOpError(ErrorCode.BUSY, 'an update is being committed');
    }
    const size = Number(req.size);
    if (!Number.isSafeInteger(size) || size < 1 || size > this.config.update.max_executable_bytes) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `size ${req.size} must be between 1 and update.max_executable_bytes ${this.config.update.max_executable_bytes}`,
      );
    }
    const staging = await this.stage(req, size, this.host.executable);
    if (req.data.length > 0) {
      await this.append(staging, req);
    }
    if (!req.commit) {
      return create(AgentUpdateResponseSchema, {
        updateId: req.updateId,
        state: 'staging',
        received: BigInt(staging.received),
      });
    }
    this.committing = true;
    try {
      return await this.commit(staging, req, this.host.executable, afterReply);
    } finally {
      this.committing = false;
    }
  }

  /** The staging file of this update: the current one, or a new one (an older one is dropped). */
  private async stage(req: AgentUpdateRequest, size: number, executable: string): Promise<Staging> {
    if (this.staging?.id === req.updateId) {
      if (this.staging.size !== size) {
        throw invalid(`size ${size} differs from the update's first chunk (${this.staging.size})`);
      }
      this.staging.idle.refresh();
      return this.staging;
    }
    if (req.offset !== 0n) {
      throw invalid(`update ${req.updateId} is not staged here: its first chunk must be at 0`);
    }
    await this.drop();
    const path = `${executable}.update-${req.updateId}`;
    await unlink(path).catch(() => undefined);
    const file = await open(path, 'wx', 0o700);
    const idle = setTimeout(() => {
      this.log.warn('update staging abandoned', { update: req.updateId });
      void this.drop();
    }, this.config.update.staging_idle_timeout_ms);
    idle.unref();
    this.staging = {
      id: req.updateId,
      path,
      size,
      received: 0,
      file,
      hash: createHash('sha256'),
      idle,
    };
    return this.staging;
  }

  private async append(s: Staging, req: AgentUpdateRequest): Promise<void> {
    if (req.offset !== BigInt(s.received)) {
      throw invalid(`offset ${req.offset}: the next byte of update ${s.id} is ${s.received}`);
    }
    if (s.received + req.data.length > s.size) {
      throw new AgentOpError(
        ErrorCode.TOO_LARGE,
        `chunk ends at ${s.received + req.data.length}, past the release size ${s.size}`,
      );
    }
    await s.file.write(req.data, 0, req.data.length, s.received);
    s.hash.update(req.data);
    s.received += req.data.length;
  }

  private async commit(
    s: Staging,
    req: AgentUpdateRequest,
    executable: string,
    afterReply: (fn: () => void) => void,
  ): Promise<AgentUpdateResponse> {
    const from = this.host.version;
    try {
      if (req.target !== this.host.target) {
        throw notAllowed(
          `release target ${req.target || '(none)'} is not this agent's ${this.host.target}`,
        );
      }
      if (!req.version) {
        throw invalid('version is required on a commit');
      }
      if (!req.allowDowngrade && compareVersions(req.version, from) <= 0) {
        throw notAllowed(
          `version ${req.version} is not newer than the running ${from} (allow_downgrade to install it)`,
        );
      }
      if (!SHA256_HEX.test(req.sha256)) {
        throw invalid('sha256 must be 64 lower-case hex digits');
      }
      if (s.received !== s.size) {
        throw invalid(`received ${s.received} bytes of ${s.size}`);
      }
      const actual = s.hash.digest('hex');
      if (actual !== req.sha256) {
        throw notAllowed(
          `sha256 of the received executable is ${actual}, the release says ${req.sha256}`,
        );
      }
      const keys = await this.trustedKeys(req);
      const signer = verifiedBy(
        keys,
        releaseStatement({
          version: req.version,
          target: req.target,
          sha256: actual,
          size: s.size,
        }),
        req.signature,
      );
      if (!signer) {
        throw notAllowed(
          `signature does not verify with any of the ${keys.length} trusted release key(s)`,
        );
      }
      await s.file.sync();
      await s.file.close();
      clearTimeout(s.idle);
      this.staging = undefined;
      await chmod(s.path, 0o755);

      // The previous executable is kept beside the new one: the watchdog runs it and restores it.
      const previous = `${executable}.previous`;
      await unlink(previous).catch(() => undefined);
      await link(executable, previous).catch(() => copyFile(executable, previous));
      await mkdir(this.config.update.state_dir, { recursive: true, mode: 0o700 });
      const deadline = Date.now() + this.config.update.ready_timeout_ms;
      const state: UpdateState = {
        update_id: req.updateId,
        from_version: from,
        to_version: req.version,
        phase: 'pending',
        deadline_ms: deadline,
        executable,
        previous,
        relaunch: this.host.relaunch,
        restart_command: this.config.update.restart_command,
        old_pid: process.pid,
        at: new Date().toISOString(),
      };
      writeUpdateState(this.stateFile, state);
      await rename(s.path, executable);
      this.log.info('update swapped in', {
        update: req.updateId,
        from,
        to: req.version,
        key: signer,
      });
      afterReply(() => this.restart(previous));
      return create(AgentUpdateResponseSchema, {
        updateId: req.updateId,
        state: 'restarting',
        received: BigInt(s.size),
        version: from,
        readyTimeoutMs: this.config.update.ready_timeout_ms,
      });
    } catch (err) {
      await this.drop();
      this.log.warn('update refused', { update: req.updateId, error: (err as Error).message });
      throw err;
    }
  }

  /** Starts the watchdog outside this process and, without a service manager, ends this one. */
  private restart(previous: string): void {
    const launcher = this.config.update.watchdog_launcher;
    const argv = [...launcher, ...this.host.watchdog(previous, this.stateFile)];
    const [program, ...args] = argv;
    const child = spawn(program!, args, {
      detached: true,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    // Without a watchdog nothing restarts this agent or guards the new executable: put the
    // previous one back and say so (this agent, still running, reports it).
    child.on('error', (err) => this.undo(previous, `the watchdog did not start: ${err.message}`));
    if (launcher.length > 0) {
      // A launcher (systemd-run) ends once the watchdog runs; a failure means it never did.
      child.on('exit', (code, signal) => {
        if (code !== 0) {
          this.undo(
            previous,
            `the watchdog did not start: ${launcher[0]} exited with ${signal ? `signal ${signal}` : `status ${code}`}`,
          );
        }
      });
    }
    child.unref();
    this.log.info('update: watchdog started, restarting', { argv, pid: child.pid });
    if (this.config.update.restart_command === null) {
      this.host.exit();
    }
  }

  /** Restores the previous executable of a pending update whose watchdog never ran. */
  private undo(previous: string, reason: string): void {
    const state = readUpdateState(this.stateFile);
    if (state?.phase !== 'pending') {
      return;
    }
    this.log.error('update undone', { update: state.update_id, reason });
    try {
      renameSync(previous, state.executable);
    } catch (err) {
      this.log.error('previous executable not restored', { error: (err as Error).message });
    }
    writeUpdateState(this.stateFile, {
      ...state,
      phase: 'rolled_back',
      reason,
      at: new Date().toISOString(),
    });
  }

  /** Built-in keys, the config's, and those of a kept (or this commit's) signed key list. */
  private async trustedKeys(req: AgentUpdateRequest): Promise<string[]> {
    const base = [...this.host.builtInKeys, ...this.config.update.release_keys];
    const keptFile = join(this.config.update.state_dir, KEY_LIST_FILE);
    let kept: { keys: string[]; issued_at: string } | undefined;
    if (existsSync(keptFile)) {
      try {
        kept = parseKeyList(readFileSync(keptFile));
      } catch (err) {
        this.log.warn('kept release key list ignored', { error: (err as Error).message });
      }
    }
    if (req.keyList.length > 0) {
      let offered;
      try {
        offered = parseKeyList(req.keyList);
      } catch (err) {
        throw invalid((err as Error).message);
      }
      const signer = verifiedBy(
        [...base, ...(kept?.keys ?? [])],
        keyListStatement(req.keyList),
        req.keyListSignature,
      );
      if (!signer) {
        throw notAllowed('key_list_signature does not verify with a trusted release key');
      }
      if (!kept || Date.parse(offered.issued_at) > Date.parse(kept.issued_at)) {
        await mkdir(dirname(keptFile), { recursive: true, mode: 0o700 });
        await writeFile(`${keptFile}.tmp`, req.keyList, { mode: 0o600 });
        await rename(`${keptFile}.tmp`, keptFile);
        kept = offered;
        this.log.info('release key list replaced', { keys: offered.keys.length, by: signer });
      }
    }
    return [...base, ...(kept?.keys ?? [])];
  }

  private async drop(): Promise<void> {
    const s = this.staging;
    if (!s) {
      return;
    }
    this.staging = undefined;
    clearTimeout(s.idle);
    await s.file.close().catch(() => undefined);
    await unlink(s.path).catch(() => undefined);
  }

  /** Closes a staging file on agent stop. */
  close(): Promise<void> {
    return this.drop();
  }
}

function invalid(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.INVALID_REQUEST, message);
}

function notAllowed(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.NOT_ALLOWED, message);
}
