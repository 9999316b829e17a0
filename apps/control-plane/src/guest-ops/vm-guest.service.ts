import { createHash } from 'node:crypto';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { Inject, Injectable } from '@nestjs/common';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ErrorCode,
  ExecuteRequestSchema,
  FileReadRequestSchema,
  FileWriteRequestSchema,
  GuestErrorCode,
  GuestRequestError,
  ShutdownMode,
  ShutdownRequestSchema,
  callGuest,
  firstUnsafeRunAsEnv,
  isSubjectToken,
  natsFilePort,
  readGuestFile,
  writeGuestFile,
  type ExecuteResponse,
  type FileChunkPort,
  type FileLimits,
  type FileReadResponse,
  type FileWriteResponse,
  type GuestOperation,
  type GuestRequestSchema,
  type ShutdownResponse,
} from '@lq/proto';
import { AuditService, redactExecute, sha256Hex, type AuditRecord } from '@lq/audit';
import type { GuestGrant, Permission } from '@lq/auth';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { InventoryService, type VmLocation } from '../inventory/inventory.service.js';
import {
  VmAccessService,
  fileLimitsOf,
  runAsLimitsOf,
  type Caller,
} from '../access/vm-access.service.js';
import { actorOf } from '../audit/audit-actor.js';
import { NatsService } from '../nats/nats.service.js';
import { VmGuestErrorCode, VmGuestException } from './vm-guest.exception.js';

export interface ExecuteInput {
  command?: string;
  argv?: string[];
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  stdin?: Uint8Array;
  timeoutSeconds?: number;
  runAsUser?: string;
  runAsGroup?: string;
  includeSupplementaryGroups?: boolean;
  outputLimitBytes?: number;
  /** Names of env variables whose values are secrets: never written to the audit trail. */
  secretEnv?: string[];
}

export interface PingResult {
  vmId: string;
  agentVersion: string;
  uptimeSeconds: number;
  latencyMs: number;
}

export type { Caller };

/** What an operation adds to its outcome row. */
type OutcomeFields = Pick<
  AuditRecord,
  'status' | 'exitCode' | 'stdout' | 'stderr' | 'output' | 'params'
>;

/**
 * An execution's outcome row, synchronous or not: status, exit code, the sha256 and size of each
 * stream as the agent returned it, and the first `cap` bytes of each kept for the command history.
 */
export function executeOutcome(r: ExecuteResponse, cap: number): OutcomeFields {
  return {
    status: r.timedOut ? 'timed_out' : r.cancelled ? 'cancelled' : 'ok',
    exitCode: r.exitCode,
    stdout: { sha256: sha256Hex(r.stdout), bytes: r.stdout.length },
    stderr: { sha256: sha256Hex(r.stderr), bytes: r.stderr.length },
    params: {
      signal: r.signal || undefined,
      agent_stdout_truncated: r.stdoutTruncated || undefined,
      agent_stderr_truncated: r.stderrTruncated || undefined,
      stdout_total_bytes: Number(r.stdoutTotalBytes),
      stderr_total_bytes: Number(r.stderrTotalBytes),
    },
    output: {
      stdout: r.stdout.subarray(0, cap),
      stderr: r.stderr.subarray(0, cap),
      stdoutTruncated: r.stdout.length > cap,
      stderrTruncated: r.stderr.length > cap,
    },
  };
}

/** A port whose every chunk request carries the caller's file limits. */
function limitedPort(port: FileChunkPort, limits: FileLimits | undefined): FileChunkPort {
  if (!limits) {
    return port;
  }
  return {
    chunkMaxBytes: port.chunkMaxBytes,
    read: (request, timeoutMs) => port.read({ ...request, limits }, timeoutMs),
    write: (request, timeoutMs) => port.write({ ...request, limits }, timeoutMs),
  };
}

// The agent needs a moment after a command's own timeout to kill it and answer.
export const EXEC_REPLY_MARGIN_MS = 5000;
// Freezing runs hooks (each up to the agent's hook timeout) before it answers.
const QUIESCE_REPLY_MS = 300_000;

const GUEST_CODES: Record<GuestErrorCode, VmGuestErrorCode> = {
  [GuestErrorCode.UNSPECIFIED]: VmGuestErrorCode.INTERNAL,
  [GuestErrorCode.VM_NOT_FOUND]: VmGuestErrorCode.VM_NOT_FOUND,
  [GuestErrorCode.AGENT_NOT_CONNECTED]: VmGuestErrorCode.AGENT_NOT_CONNECTED,
  [GuestErrorCode.AGENT_TIMEOUT]: VmGuestErrorCode.AGENT_TIMEOUT,
  [GuestErrorCode.AGENT_ERROR]: VmGuestErrorCode.AGENT_ERROR,
  [GuestErrorCode.INVALID_REQUEST]: VmGuestErrorCode.INVALID_REQUEST,
  [GuestErrorCode.INTERNAL]: VmGuestErrorCode.INTERNAL,
};

/**
 * The one service behind REST, Connect and gRPC for guest operations: validates input before
 * anything is sent, resolves the VM's node from the inventory, sends the operation to that
 * node's subject with the request's deadline, and maps every failure to a VmGuestException
 * whose code each transport turns into its own status.
 *
 * Every operation: input validated (400, nothing sent) → VM located → the caller's permission
 * checked on the VM's project (403, audited) → audit intent written (503 and nothing sent if it
 * cannot be) → NATS request → audit outcome (exit code, duration, error, output hashes).
 */
@Injectable()
export class VmGuestService {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(VmAccessService) private readonly access: VmAccessService,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  async ping(
    vmId: string,
    timeoutSeconds: number | undefined,
    caller: Caller,
  ): Promise<PingResult> {
    const started = performance.now();
    const timeoutMs = this.timeoutMs(timeoutSeconds);
    const pong = await this.audited(
      { vmId, caller, operation: 'ping', permission: 'vm.read', params: {} },
      (where) =>
        this.call(where, vmId, 'ping', timeoutMs, caller, { case: 'ping', value: {} }, 'pong'),
      () => ({ status: 'ok' }),
    );
    return {
      vmId,
      agentVersion: pong.agentVersion,
      uptimeSeconds: pong.uptimeSeconds,
      latencyMs: performance.now() - started,
    };
  }

  async execute(vmId: string, input: ExecuteInput, caller: Caller): Promise<ExecuteResponse> {
    const request = this.executeRequest(input);
    const commandMs = this.timeoutMs(input.timeoutSeconds);
    return this.audited(
      {
        vmId,
        caller,
        operation: 'execute',
        permission: 'guest.exec',
        runAsUser: request.runAsUser,
        params: redactExecute({ ...input, argv: request.argv }),
      },
      (where, grant) => {
        request.limits = runAsLimitsOf(grant);
        return this.call(
          where,
          vmId,
          'execute',
          commandMs + EXEC_REPLY_MARGIN_MS,
          caller,
          { case: 'execute', value: request },
          'execute',
        );
      },
      (r) => executeOutcome(r, this.config.audit.outputMaxBytes),
    );
  }

  async readChunk(
    vmId: string,
    path: string,
    offset: bigint,
    length: number,
    caller: Caller,
  ): Promise<FileReadResponse> {
    this.checkPath(path);
    const timeoutMs = this.timeoutMs(undefined);
    return this.audited(
      {
        vmId,
        caller,
        operation: 'file.read',
        permission: 'guest.file.read',
        params: { path, offset: Number(offset), length },
        file: { path },
        check: (where) => {
          const max = where.fileChunkMaxBytes || 512 * 1024;
          if (length > max) {
            throw this.invalid('length', `must be at most ${max} bytes (the node's chunk limit)`);
          }
        },
      },
      (where, grant) => {
        const max = where.fileChunkMaxBytes || 512 * 1024;
        return this.call(
          where,
          vmId,
          'file.read',
          timeoutMs,
          caller,
          {
            case: 'fileRead',
            value: create(FileReadRequestSchema, {
              path,
              offset,
              length: length || max,
              limits: fileLimitsOf(grant),
            }),
          },
          'fileRead',
        );
      },
      (r) => ({ status: 'ok', params: { bytes: r.data.length, sha256: sha256Hex(r.data) } }),
    );
  }

  async writeChunk(
    vmId: string,
    request: MessageInitShape<typeof FileWriteRequestSchema>,
    caller: Caller,
  ): Promise<FileWriteResponse> {
    this.checkPath(request.path ?? '');
    const timeoutMs = this.timeoutMs(undefined);
    const data = request.data ?? new Uint8Array();
    return this.audited(
      {
        vmId,
        caller,
        operation: 'file.write',
        permission: 'guest.file.write',
        // Never the bytes themselves: their size and digest.
        params: {
          path: request.path,
          offset: Number(request.offset ?? 0n),
          append: request.append || undefined,
          create: request.create || undefined,
          truncate: request.truncate || undefined,
          mode: request.mode === undefined ? undefined : request.mode.toString(8),
          uid: request.uid,
          gid: request.gid,
          bytes: data.length,
          sha256: sha256Hex(data),
        },
        file: {
          path: request.path ?? '',
          mode: request.mode,
          owner: request.uid !== undefined || request.gid !== undefined,
        },
        check: (where) => {
          const max = where.fileChunkMaxBytes || 512 * 1024;
          if (data.length > max) {
            throw this.invalid(
              'data',
              `must be at most ${max} bytes per call (the node's chunk limit); use PUT /api/vms/:id/files for whole files`,
            );
          }
        },
      },
      (where, grant) =>
        this.call(
          where,
          vmId,
          'file.write',
          timeoutMs,
          caller,
          {
            case: 'fileWrite',
            value: create(FileWriteRequestSchema, { ...request, limits: fileLimitsOf(grant) }),
          },
          'fileWrite',
        ),
      (r) => ({
        status: 'ok',
        params: { bytes_written: Number(r.bytesWritten), size: Number(r.size) },
      }),
    );
  }

  /** Streams a whole guest file to `sink` in chunks; memory stays bounded by a few chunks. */
  async readFile(
    vmId: string,
    path: string,
    sink: (chunk: Uint8Array) => Promise<void> | void,
    caller: Caller,
  ): Promise<{ bytes: number }> {
    this.checkPath(path);
    const timeoutMs = this.timeoutMs(undefined);
    const digest = createHash('sha256');
    return this.audited(
      {
        vmId,
        caller,
        operation: 'file.read',
        permission: 'guest.file.read',
        params: { path },
        file: { path },
      },
      (where, grant) => {
        const port = limitedPort(
          natsFilePort(
            this.nats.connection,
            where.nodeId,
            vmId,
            where.fileChunkMaxBytes || 512 * 1024,
            caller.principal.username,
          ),
          fileLimitsOf(grant),
        );
        const hashed = (chunk: Uint8Array) => {
          digest.update(chunk);
          return sink(chunk);
        };
        return this.mapErrors(vmId, where.nodeId, () =>
          readGuestFile(port, path, hashed, { timeoutMs }),
        );
      },
      (r) => ({ status: 'ok', params: { bytes: r.bytes, sha256: digest.digest('hex') } }),
    );
  }

  /** Replaces a guest file atomically from a stream of chunks. */
  async writeFile(
    vmId: string,
    path: string,
    source: AsyncIterable<Uint8Array>,
    mode: number | undefined,
    caller: Caller,
  ): Promise<{ bytes: number; size: bigint }> {
    this.checkPath(path);
    const timeoutMs = this.timeoutMs(undefined);
    const digest = createHash('sha256');
    async function* hashed(): AsyncIterable<Uint8Array> {
      for await (const chunk of source) {
        digest.update(chunk);
        yield chunk;
      }
    }
    return this.audited(
      {
        vmId,
        caller,
        operation: 'file.write',
        permission: 'guest.file.write',
        params: { path, mode: mode === undefined ? undefined : mode.toString(8), whole_file: true },
        file: { path, mode },
      },
      (where, grant) => {
        const port = limitedPort(
          natsFilePort(
            this.nats.connection,
            where.nodeId,
            vmId,
            where.fileChunkMaxBytes || 512 * 1024,
            caller.principal.username,
          ),
          fileLimitsOf(grant),
        );
        return this.mapErrors(vmId, where.nodeId, () =>
          writeGuestFile(port, path, hashed(), { mode, timeoutMs }),
        );
      },
      (r) => ({
        status: 'ok',
        params: { bytes: r.bytes, size: Number(r.size), sha256: digest.digest('hex') },
      }),
    );
  }

  /** Freezes the guest's filesystems (hooks, auto-thaw after timeout_seconds). */
  quiesce(vmId: string, mountPoints: string[], timeoutSeconds: number | undefined, caller: Caller) {
    for (const m of mountPoints) {
      this.checkPath(m, 'mount_points');
    }
    return this.audited(
      {
        vmId,
        caller,
        operation: 'quiesce',
        permission: 'guest.quiesce',
        params: { mount_points: mountPoints, timeout_seconds: timeoutSeconds },
      },
      (where) =>
        this.call(
          where,
          vmId,
          'quiesce',
          QUIESCE_REPLY_MS,
          caller,
          { case: 'quiesce', value: { mountPoints, timeoutSeconds: timeoutSeconds ?? 0 } },
          'quiesce',
        ),
      (r) => ({ status: 'ok', params: { frozen: r.frozen, hooks: r.hooks.length } }),
    );
  }

  thaw(vmId: string, caller: Caller) {
    return this.audited(
      { vmId, caller, operation: 'thaw', permission: 'guest.quiesce', params: {} },
      (where) =>
        this.call(
          where,
          vmId,
          'thaw',
          QUIESCE_REPLY_MS,
          caller,
          { case: 'thaw', value: {} },
          'thaw',
        ),
      (r) => ({ status: 'ok', params: { thawed: r.thawed, was_frozen: r.wasFrozen } }),
    );
  }

  quiesceStatus(vmId: string, caller: Caller) {
    return this.audited(
      { vmId, caller, operation: 'quiesce.status', permission: 'vm.read', params: {} },
      (where) =>
        this.call(
          where,
          vmId,
          'quiesce.status',
          this.timeoutMs(undefined),
          caller,
          { case: 'quiesceStatus', value: {} },
          'quiesceStatus',
        ),
      (r) => ({ status: 'ok', params: { frozen: r.frozen } }),
    );
  }

  /** Steps the guest clock (its time service, or this control plane's clock with force). */
  syncTime(vmId: string, force: boolean, caller: Caller) {
    return this.audited(
      { vmId, caller, operation: 'time.sync', permission: 'guest.time', params: { force } },
      (where) =>
        this.call(
          where,
          vmId,
          'time.sync',
          this.timeoutMs(undefined),
          caller,
          { case: 'syncTime', value: { force, hostTime: timestampNow() } },
          'syncTime',
        ),
      (r) => ({
        status: 'ok',
        params: {
          method: r.method,
          offset_before_ms: r.offsetBeforeMs,
          offset_after_ms: r.offsetAfterMs,
          rtc_error: r.rtcError || undefined,
        },
      }),
    );
  }

  /** Sets a guest user's password: the audit trail says only "password set for user X". */
  setUserPassword(
    vmId: string,
    username: string,
    secret: { password?: string; cryptedHash?: string },
    caller: Caller,
  ) {
    if ((secret.password === undefined) === (secret.cryptedHash === undefined)) {
      throw this.invalid('password', 'give exactly one of password or crypted_hash');
    }
    return this.audited(
      {
        vmId,
        caller,
        operation: 'password.set',
        permission: 'guest.password',
        params: { username, by: secret.password !== undefined ? 'password' : 'crypted_hash' },
      },
      (where, grant) =>
        this.call(
          where,
          vmId,
          'password.set',
          this.timeoutMs(undefined),
          caller,
          {
            case: 'setUserPassword',
            value: {
              username,
              limits: runAsLimitsOf(grant),
              secret:
                secret.password !== undefined
                  ? { case: 'password', value: secret.password }
                  : { case: 'cryptedHash', value: secret.cryptedHash! },
            },
          },
          'setUserPassword',
        ),
      () => ({ status: 'ok', params: { result: `password set for user ${username}` } }),
    );
  }

  /** Mounted filesystems with type and use, asked now (not from telemetry). */
  fsInfo(vmId: string, caller: Caller) {
    return this.audited(
      { vmId, caller, operation: 'fs.info', permission: 'vm.read', params: {} },
      (where) =>
        this.call(
          where,
          vmId,
          'fs.info',
          this.timeoutMs(undefined),
          caller,
          { case: 'getFsInfo', value: {} },
          'getFsInfo',
        ),
      () => ({ status: 'ok' }),
    );
  }

  /** OS facts and network interfaces, asked now. */
  info(vmId: string, caller: Caller) {
    return this.audited(
      { vmId, caller, operation: 'info', permission: 'vm.read', params: {} },
      (where) =>
        this.call(
          where,
          vmId,
          'info',
          this.timeoutMs(undefined),
          caller,
          { case: 'getInfo', value: {} },
          'getInfo',
        ),
      () => ({ status: 'ok' }),
    );
  }

  /** Stops a running execution by its id (audited as execute.cancel, needs guest.exec). */
  async cancelExecution(
    vmId: string,
    executionId: string,
    caller: Caller,
  ): Promise<{ found: boolean }> {
    const timeoutMs = this.timeoutMs(undefined);
    return this.audited(
      {
        vmId,
        caller,
        operation: 'execute.cancel',
        permission: 'guest.exec',
        params: { execution_id: executionId },
      },
      (where) =>
        this.call(
          where,
          vmId,
          'execute.cancel',
          timeoutMs,
          caller,
          { case: 'cancelExecution', value: { executionId } },
          'cancelExecution',
        ),
      (r) => ({ status: 'ok', params: { found: r.found } }),
    );
  }

  async shutdown(
    vmId: string,
    mode: ShutdownMode,
    delaySeconds: number,
    caller: Caller,
  ): Promise<ShutdownResponse> {
    if (!Object.values(ShutdownMode).includes(mode)) {
      throw this.invalid('mode', 'must be poweroff, reboot or halt');
    }
    const timeoutMs = this.timeoutMs(undefined);
    return this.audited(
      {
        vmId,
        caller,
        operation: 'shutdown',
        permission: 'guest.power',
        params: { mode: ShutdownMode[mode].toLowerCase(), delay_seconds: delaySeconds },
      },
      (where) =>
        this.call(
          where,
          vmId,
          'shutdown',
          timeoutMs,
          caller,
          { case: 'shutdown', value: create(ShutdownRequestSchema, { mode, delaySeconds }) },
          'shutdown',
        ),
      () => ({ status: 'ok' }),
    );
  }

  /**
   * The audited path of every guest operation: locate, authorize, intent, work, outcome. The
   * intent must be committed before `work` runs; the outcome records success or the mapped error.
   */
  private async audited<T>(
    spec: {
      vmId: string;
      caller: Caller;
      operation: string;
      permission: Permission;
      params: Record<string, unknown>;
      /** execute: whom the command runs as (the binding's limits apply). */
      runAsUser?: string;
      /** File operations: the path, and a mode or owner being set. */
      file?: { path: string; mode?: number; owner?: boolean };
      /** Checks that need the VM's location, before the intent is written. */
      check?: (where: VmLocation) => void;
    },
    work: (where: VmLocation, grant: GuestGrant) => Promise<T>,
    outcomeOf: (result: T) => OutcomeFields,
  ): Promise<T> {
    const { vmId, caller, operation, permission } = spec;
    if (!isSubjectToken(vmId)) {
      throw this.invalid('vm_id', 'must be 1-128 letters, digits, _ or -');
    }
    const where = await this.inventory.locate(vmId);
    const scope = { vmId, projectId: where.projectId, nodeId: where.nodeId };
    let grant: GuestGrant;
    if (spec.runAsUser !== undefined) {
      grant = await this.access.requireExec(caller, scope, spec.runAsUser);
    } else if (
      spec.file &&
      (permission === 'guest.file.read' || permission === 'guest.file.write')
    ) {
      grant = await this.access.requireFile(caller, permission, scope, operation, spec.file);
    } else {
      grant = await this.access.requireGuest(caller, permission, scope, operation);
    }
    spec.check?.(where);
    const row = {
      ...actorOf(caller.principal, caller),
      vmId,
      nodeId: where.nodeId,
      projectId: where.projectId,
      operation,
    };
    await this.audit.intent({ ...row, params: spec.params });
    const started = performance.now();
    let result: T;
    try {
      result = await work(where, grant);
    } catch (err) {
      const e = this.toException(err, vmId, where.nodeId);
      if (e.code === VmGuestErrorCode.VM_NOT_FOUND) {
        // The node no longer has it: it moved or left; the next call reads the inventory again.
        this.inventory.forget(vmId);
      }
      await this.audit.record({
        ...row,
        kind: 'outcome',
        status: e.agentCode ? `${e.code}:${e.agentCode}` : e.code,
        error: e.message,
        durationMs: performance.now() - started,
      });
      throw e;
    }
    await this.audit.record({
      ...row,
      kind: 'outcome',
      ...outcomeOf(result),
      durationMs: performance.now() - started,
    });
    return result;
  }

  private call<
    C extends
      | 'pong'
      | 'execute'
      | 'fileRead'
      | 'fileWrite'
      | 'shutdown'
      | 'cancelExecution'
      | 'quiesce'
      | 'thaw'
      | 'quiesceStatus'
      | 'syncTime'
      | 'setUserPassword'
      | 'getFsInfo'
      | 'getInfo',
  >(
    where: VmLocation,
    vmId: string,
    op: GuestOperation,
    timeoutMs: number,
    caller: Caller,
    operation: MessageInitShape<typeof GuestRequestSchema>['operation'],
    expect: C,
  ) {
    return this.mapErrors(vmId, where.nodeId, () =>
      callGuest(
        this.nats.connection,
        where.nodeId,
        op,
        { vmId, timeoutMs, actor: caller.principal.username, operation },
        expect,
        this.config.natsSlackMs,
      ),
    );
  }

  private async mapErrors<T>(vmId: string, nodeId: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw this.toException(err, vmId, nodeId);
    }
  }

  /** Any failure of a guest request as the VmGuestException each transport maps. */
  toException(err: unknown, vmId: string, nodeId: string): VmGuestException {
    if (err instanceof VmGuestException) {
      return err;
    }
    if (err instanceof GuestRequestError) {
      const agentCode =
        err.code === GuestErrorCode.AGENT_ERROR ? ErrorCode[err.agentCode] : undefined;
      return new VmGuestException(GUEST_CODES[err.code], err.message, agentCode);
    }
    const e = err as Error & { isNoResponders?: () => boolean };
    const text = `${e?.name ?? ''} ${e?.message ?? String(err)}`;
    if (e?.isNoResponders?.() || /no responders/i.test(text)) {
      return new VmGuestException(
        VmGuestErrorCode.NODE_UNAVAILABLE,
        `no node daemon is serving node ${nodeId} (VM ${vmId})`,
      );
    }
    if (/timeout/i.test(text)) {
      return new VmGuestException(
        VmGuestErrorCode.NODE_TIMEOUT,
        `node ${nodeId} did not answer in time for VM ${vmId}`,
      );
    }
    if (/closed|connection|draining|disconnect/i.test(text)) {
      return new VmGuestException(
        VmGuestErrorCode.NODE_UNAVAILABLE,
        `NATS is unavailable: ${e.message}`,
      );
    }
    return new VmGuestException(VmGuestErrorCode.INTERNAL, e?.message ?? String(err));
  }

  private timeoutMs(seconds: number | undefined): number {
    const s = seconds || this.config.guestTimeoutSeconds;
    if (!Number.isInteger(s) || s < 1 || s > this.config.guestTimeoutMaxSeconds) {
      throw this.invalid(
        'timeout_seconds',
        `must be a whole number between 1 and ${this.config.guestTimeoutMaxSeconds}`,
      );
    }
    return s * 1000;
  }

  /** Validates an execute's input (400 naming the field) and builds the agent's request. */
  executeRequest(input: ExecuteInput) {
    const { limits } = this.config;
    const hasCommand = (input.command ?? '') !== '';
    const hasArgv = (input.argv?.length ?? 0) > 0;
    if (hasCommand === hasArgv) {
      throw this.invalid(
        'command',
        'give exactly one of command (a shell line) or argv (a program and its arguments)',
      );
    }
    if (!hasArgv && (input.args?.length ?? 0) > 0) {
      throw this.invalid('args', 'only go with argv');
    }
    const argv = [...(input.argv ?? []), ...(input.args ?? [])];
    if ((input.command ?? '').includes('\u0000') || argv.some((a) => a.includes('\u0000'))) {
      throw this.invalid(hasCommand ? 'command' : 'argv', 'must not contain NUL characters');
    }
    for (const k of input.secretEnv ?? []) {
      if (!(k in (input.env ?? {}))) {
        throw this.invalid('secret_env', `names ${JSON.stringify(k)}, which is not in env`);
      }
    }
    const commandBytes =
      Buffer.byteLength(input.command ?? '') +
      argv.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
    if (commandBytes > limits.maxCommandBytes) {
      throw this.invalid(
        hasCommand ? 'command' : 'argv',
        `is ${commandBytes} bytes; the limit is ${limits.maxCommandBytes}`,
      );
    }
    const env = input.env ?? {};
    let envBytes = 0;
    for (const [k, v] of Object.entries(env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
        throw this.invalid('env', `key ${JSON.stringify(k)} is not a valid variable name`);
      }
      if (v.includes('\u0000')) {
        throw this.invalid('env', `${k} must not contain NUL characters`);
      }
      envBytes += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
    }
    if (input.runAsUser || input.runAsGroup) {
      const unsafe = firstUnsafeRunAsEnv(Object.keys(env));
      if (unsafe !== undefined) {
        throw this.invalid(
          'env',
          `${unsafe} is refused with run_as_user/run_as_group: it steers the loader or libc of programs that start as root`,
        );
      }
    }
    if (envBytes > limits.maxEnvBytes) {
      throw this.invalid('env', `is ${envBytes} bytes; the limit is ${limits.maxEnvBytes}`);
    }
    const stdin = input.stdin ?? new Uint8Array();
    if (stdin.length > limits.maxStdinBytes) {
      throw this.invalid('stdin', `is ${stdin.length} bytes; the limit is ${limits.maxStdinBytes}`);
    }
    if (input.cwd) {
      this.checkPath(input.cwd, 'cwd');
    }
    return create(ExecuteRequestSchema, {
      argv,
      command: input.command ?? '',
      env,
      cwd: input.cwd ?? '',
      stdin,
      timeoutMs: this.timeoutMs(input.timeoutSeconds),
      runAsUser: input.runAsUser ?? '',
      runAsGroup: input.runAsGroup ?? '',
      includeSupplementaryGroups: input.includeSupplementaryGroups ?? false,
      outputLimitBytes: input.outputLimitBytes ?? 0,
    });
  }

  private checkPath(path: string, field = 'path'): void {
    if (!path.startsWith('/')) {
      throw this.invalid(
        field,
        `must be an absolute guest path (got ${JSON.stringify(path.slice(0, 100))})`,
      );
    }
    if (Buffer.byteLength(path) > this.config.limits.maxPathBytes) {
      throw this.invalid(field, `is longer than ${this.config.limits.maxPathBytes} bytes`);
    }
  }

  private invalid(field: string, message: string): VmGuestException {
    return new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, `${field} ${message}`);
  }
}
