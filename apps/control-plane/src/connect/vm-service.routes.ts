import { Inject, Injectable } from '@nestjs/common';
import { create } from '@bufbuild/protobuf';
import type { ConnectRouter, HandlerContext } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ExecuteScriptResponseSchema,
  ExecutionSchema,
  GetExecutionResponseSchema,
  OutputStream,
  StartExecutionResponseSchema,
  StopExecutionResponseSchema,
  QuiesceFilesystemsResponseSchema,
  ThawFilesystemsResponseSchema,
  GetQuiesceStatusResponseSchema,
  SyncGuestTimeResponseSchema,
  SetGuestUserPasswordResponseSchema,
  StreamExecutionOutputResponseSchema,
  type StreamExecutionOutputResponse,
  GetVMResponseSchema,
  GuestShutdownResponseSchema,
  ListVMsResponseSchema,
  PingAgentResponseSchema,
  ReadGuestFileResponseSchema,
  ShutdownMode,
  VMService,
  WriteGuestFileResponseSchema,
} from '@lq/proto';
import { projectsWith } from '@lq/auth';
import { VmGuestService } from '../guest-ops/vm-guest.service.js';
import { VmReadService } from '../inventory/vm-read.service.js';
import { InventoryService } from '../inventory/inventory.service.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { callerOf } from './connect-auth.js';
import {
  ExecutionsService,
  type ExecutionView,
  type FollowSink,
} from '../executions/executions.service.js';

function executionMessage(v: ExecutionView) {
  return create(ExecutionSchema, {
    id: v.id,
    vmId: v.vm_id,
    nodeId: v.node_id,
    projectId: v.project_id,
    runId: v.run_id ?? '',
    actor: v.actor,
    status: v.status,
    exitCode: v.exit_code ?? undefined,
    signal: v.signal ?? '',
    error: v.error ?? '',
    createdAt: timestampFromDate(new Date(v.created_at)),
    endedAt: v.ended_at ? timestampFromDate(new Date(v.ended_at)) : undefined,
  });
}

/**
 * VMService for Connect (JSON and binary) and gRPC: one implementation, mounted on the HTTP
 * app and on the HTTP/2 server. Each method is one VmGuestService or InventoryService call.
 */
@Injectable()
export class VmServiceRoutes {
  constructor(
    @Inject(VmGuestService) private readonly guest: VmGuestService,
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(VmReadService) private readonly reads: VmReadService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
    @Inject(ExecutionsService) private readonly executions: ExecutionsService,
  ) {}

  register(router: ConnectRouter): void {
    router.service(VMService, {
      pingAgent: (req, ctx) =>
        this.metrics.measure('ping', async () => {
          const r = await this.guest.ping(req.vmId, req.timeoutSeconds || undefined, callerOf(ctx));
          return create(PingAgentResponseSchema, r);
        }),
      executeScript: (req, ctx) =>
        this.metrics.measure('execute', async () => {
          const r = await this.guest.execute(
            req.vmId,
            {
              command: req.command,
              argv: req.argv,
              args: req.args,
              env: req.env,
              cwd: req.cwd,
              stdin: req.stdin,
              timeoutSeconds: req.timeoutSeconds || undefined,
              runAsUser: req.runAsUser,
              runAsGroup: req.runAsGroup,
              includeSupplementaryGroups: req.includeSupplementaryGroups,
              outputLimitBytes: req.outputLimitBytes,
              secretEnv: req.secretEnv,
            },
            callerOf(ctx),
          );
          return create(ExecuteScriptResponseSchema, {
            vmId: req.vmId,
            exitCode: r.exitCode,
            signal: r.signal,
            timedOut: r.timedOut,
            stdout: Buffer.from(r.stdout).toString('utf8'),
            stderr: Buffer.from(r.stderr).toString('utf8'),
            stdoutTruncated: r.stdoutTruncated,
            stderrTruncated: r.stderrTruncated,
            durationMs: r.durationMs,
            stdoutBytes: r.stdout,
            stderrBytes: r.stderr,
          });
        }),
      readGuestFile: (req, ctx) =>
        this.metrics.measure('file.read', async () => {
          const r = await this.guest.readChunk(
            req.vmId,
            req.path,
            req.offset,
            req.length,
            callerOf(ctx),
          );
          return create(ReadGuestFileResponseSchema, {
            data: r.data,
            eof: r.eof,
            totalSize: r.totalSize,
            mode: r.mode,
          });
        }),
      writeGuestFile: (req, ctx) =>
        this.metrics.measure('file.write', async () => {
          const r = await this.guest.writeChunk(
            req.vmId,
            {
              path: req.path,
              data: req.data,
              offset: req.offset,
              append: req.append,
              create: req.create,
              truncate: req.truncate,
              mode: req.mode,
            },
            callerOf(ctx),
          );
          return create(WriteGuestFileResponseSchema, {
            bytesWritten: r.bytesWritten,
            size: r.size,
          });
        }),
      guestShutdown: (req, ctx) =>
        this.metrics.measure('shutdown', async () => {
          const mode = req.mode === ShutdownMode.UNSPECIFIED ? ShutdownMode.POWEROFF : req.mode;
          const r = await this.guest.shutdown(req.vmId, mode, req.delaySeconds, callerOf(ctx));
          return create(GuestShutdownResponseSchema, { mode: r.mode, scheduledAt: r.scheduledAt });
        }),
      listVMs: (_req, ctx) =>
        this.metrics.measure('list', async () =>
          create(ListVMsResponseSchema, {
            vms: await this.inventory.listVms(projectsWith(callerOf(ctx).principal, 'vm.read')),
          }),
        ),
      startExecution: (req, ctx) =>
        this.metrics.measure('execution.start', async () => {
          const e = req.execute;
          if (!e) {
            throw new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, 'execute is required');
          }
          const view = await this.executions.start(
            e.vmId,
            {
              command: e.command,
              argv: e.argv,
              args: e.args,
              env: e.env,
              cwd: e.cwd,
              stdin: e.stdin,
              timeoutSeconds: e.timeoutSeconds || undefined,
              runAsUser: e.runAsUser,
              runAsGroup: e.runAsGroup,
              includeSupplementaryGroups: e.includeSupplementaryGroups,
              outputLimitBytes: e.outputLimitBytes,
              secretEnv: e.secretEnv,
            },
            callerOf(ctx),
          );
          return create(StartExecutionResponseSchema, { execution: executionMessage(view) });
        }),
      getExecution: (req, ctx) =>
        this.metrics.measure('execution.get', async () =>
          create(GetExecutionResponseSchema, {
            execution: executionMessage(await this.executions.get(req.executionId, callerOf(ctx))),
          }),
        ),
      stopExecution: (req, ctx) =>
        this.metrics.measure('execution.cancel', async () =>
          create(StopExecutionResponseSchema, {
            execution: executionMessage(
              await this.executions.cancel(req.executionId, callerOf(ctx)),
            ),
          }),
        ),
      quiesceFilesystems: (req, ctx) =>
        this.metrics.measure('quiesce', async () =>
          create(QuiesceFilesystemsResponseSchema, {
            result: await this.guest.quiesce(
              req.vmId,
              req.mountPoints,
              req.timeoutSeconds || undefined,
              callerOf(ctx),
            ),
          }),
        ),
      thawFilesystems: (req, ctx) =>
        this.metrics.measure('thaw', async () =>
          create(ThawFilesystemsResponseSchema, {
            result: await this.guest.thaw(req.vmId, callerOf(ctx)),
          }),
        ),
      getQuiesceStatus: (req, ctx) =>
        this.metrics.measure('quiesce.status', async () =>
          create(GetQuiesceStatusResponseSchema, {
            status: await this.guest.quiesceStatus(req.vmId, callerOf(ctx)),
          }),
        ),
      syncGuestTime: (req, ctx) =>
        this.metrics.measure('time.sync', async () =>
          create(SyncGuestTimeResponseSchema, {
            result: await this.guest.syncTime(req.vmId, req.force, callerOf(ctx)),
          }),
        ),
      setGuestUserPassword: (req, ctx) =>
        this.metrics.measure('password.set', async () => {
          await this.guest.setUserPassword(
            req.vmId,
            req.username,
            req.secret.case === 'password'
              ? { password: req.secret.value }
              : { cryptedHash: req.secret.value },
            callerOf(ctx),
          );
          return create(SetGuestUserPasswordResponseSchema, {});
        }),
      streamExecutionOutput: (req, ctx) =>
        this.streamOutput(req.executionId, Number(req.afterSeq), ctx),
      getVM: (req, ctx) =>
        this.metrics.measure('get', async () =>
          create(GetVMResponseSchema, { vm: await this.reads.getVm(callerOf(ctx), req.vmId) }),
        ),
    });
  }

  /** The output as a server stream: chunks as they come, then the end (bounded buffering). */
  private async *streamOutput(
    executionId: string,
    afterSeq: number,
    ctx: HandlerContext,
  ): AsyncGenerator<StreamExecutionOutputResponse> {
    const queue: StreamExecutionOutputResponse[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const push = (m: StreamExecutionOutputResponse) => {
      queue.push(m);
      wake?.();
    };
    const sink: FollowSink = {
      chunk: (c) =>
        push(
          create(StreamExecutionOutputResponseSchema, {
            event: {
              case: 'chunk',
              value: {
                seq: BigInt(c.seq),
                stream: c.stream === 'stdout' ? OutputStream.STDOUT : OutputStream.STDERR,
                data: c.data,
                droppedBytes: BigInt(c.droppedBytes),
              },
            },
          }),
        ),
      end: (view) => {
        ended = true;
        push(
          create(StreamExecutionOutputResponseSchema, {
            event: { case: 'end', value: executionMessage(view) },
          }),
        );
      },
    };
    const stop = await this.executions.follow(executionId, callerOf(ctx), afterSeq, sink);
    ctx.signal.addEventListener('abort', () => wake?.());
    try {
      for (;;) {
        while (queue.length > 0) {
          yield queue.shift()!;
        }
        if (ended || ctx.signal.aborted) {
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      stop();
    }
  }
}
