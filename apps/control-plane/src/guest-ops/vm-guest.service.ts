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
  isSubjectToken,
  natsFilePort,
  readGuestFile,
  writeGuestFile,
  type ExecuteResponse,
  type FileReadResponse,
  type FileWriteResponse,
  type GuestOperation,
  type GuestRequestSchema,
  type ShutdownResponse,
} from '@lq/proto';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { InventoryService } from '../inventory/inventory.service.js';
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
}

export interface PingResult {
  vmId: string;
  agentVersion: string;
  uptimeSeconds: number;
  latencyMs: number;
}

/** Who asked, for the node daemon's log (authorization comes with the auth issue). */
export interface Caller {
  actor: string;
}

// The agent needs a moment after a command's own timeout to kill it and answer.
const EXEC_REPLY_MARGIN_MS = 5000;

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
 * whose code each transport turns into its own status. Authorization and the audit trail wrap
 * these calls (guards and an audit step around them) when they land.
 */
@Injectable()
export class VmGuestService {
  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(NatsService) private readonly nats: NatsService,
  ) {}

  async ping(
    vmId: string,
    timeoutSeconds: number | undefined,
    caller: Caller,
  ): Promise<PingResult> {
    const started = performance.now();
    const pong = await this.call(
      vmId,
      'ping',
      this.timeoutMs(timeoutSeconds),
      caller,
      { case: 'ping', value: {} },
      'pong',
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
    return this.call(
      vmId,
      'execute',
      commandMs + EXEC_REPLY_MARGIN_MS,
      caller,
      { case: 'execute', value: request },
      'execute',
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
    const where = await this.inventory.locate(vmId);
    const max = where.fileChunkMaxBytes || 512 * 1024;
    if (length > max) {
      throw this.invalid('length', `must be at most ${max} bytes (the node's chunk limit)`);
    }
    return this.call(
      vmId,
      'file.read',
      this.timeoutMs(undefined),
      caller,
      {
        case: 'fileRead',
        value: create(FileReadRequestSchema, { path, offset, length: length || max }),
      },
      'fileRead',
    );
  }

  async writeChunk(
    vmId: string,
    request: MessageInitShape<typeof FileWriteRequestSchema>,
    caller: Caller,
  ): Promise<FileWriteResponse> {
    this.checkPath(request.path ?? '');
    const where = await this.inventory.locate(vmId);
    const max = where.fileChunkMaxBytes || 512 * 1024;
    if ((request.data?.length ?? 0) > max) {
      throw this.invalid(
        'data',
        `must be at most ${max} bytes per call (the node's chunk limit); use PUT /api/vms/:id/files for whole files`,
      );
    }
    return this.call(
      vmId,
      'file.write',
      this.timeoutMs(undefined),
      caller,
      {
        case: 'fileWrite',
        value: create(FileWriteRequestSchema, request),
      },
      'fileWrite',
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
    const where = await this.inventory.locate(vmId);
    const port = natsFilePort(
      this.nats.connection,
      where.nodeId,
      vmId,
      where.fileChunkMaxBytes || 512 * 1024,
      caller.actor,
    );
    return this.mapErrors(vmId, where.nodeId, () =>
      readGuestFile(port, path, sink, { timeoutMs: this.timeoutMs(undefined) }),
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
    const where = await this.inventory.locate(vmId);
    const port = natsFilePort(
      this.nats.connection,
      where.nodeId,
      vmId,
      where.fileChunkMaxBytes || 512 * 1024,
      caller.actor,
    );
    return this.mapErrors(vmId, where.nodeId, () =>
      writeGuestFile(port, path, source, { mode, timeoutMs: this.timeoutMs(undefined) }),
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
    return this.call(
      vmId,
      'shutdown',
      this.timeoutMs(undefined),
      caller,
      {
        case: 'shutdown',
        value: create(ShutdownRequestSchema, { mode, delaySeconds }),
      },
      'shutdown',
    );
  }

  private async call<C extends 'pong' | 'execute' | 'fileRead' | 'fileWrite' | 'shutdown'>(
    vmId: string,
    op: GuestOperation,
    timeoutMs: number,
    caller: Caller,
    operation: MessageInitShape<typeof GuestRequestSchema>['operation'],
    expect: C,
  ) {
    if (!isSubjectToken(vmId)) {
      throw this.invalid('vm_id', 'must be 1-128 letters, digits, _ or -');
    }
    const where = await this.inventory.locate(vmId);
    return this.mapErrors(vmId, where.nodeId, () =>
      callGuest(
        this.nats.connection,
        where.nodeId,
        op,
        { vmId, timeoutMs, actor: caller.actor, operation },
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

  private toException(err: unknown, vmId: string, nodeId: string): VmGuestException {
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

  private executeRequest(input: ExecuteInput) {
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
      envBytes += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
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
