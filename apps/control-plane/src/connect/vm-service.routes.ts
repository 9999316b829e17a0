import { Inject, Injectable } from '@nestjs/common';
import { create } from '@bufbuild/protobuf';
import type { ConnectRouter, HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ExecutionSchema,
  GetExecutionResponseSchema,
  OutputStream,
  StartExecutionResponseSchema,
  StopExecutionResponseSchema,
  StreamExecutionOutputResponseSchema,
  type StreamExecutionOutputResponse,
  GetVMResponseSchema,
  ListVMsResponseSchema,
  VMService,
} from '@lq/proto';
import { projectsWith } from '@lq/auth';
import type { MethodInput, UnaryMethod } from '../guest-ops/connect-binding.js';
import type { GuestOperationSpec } from '../guest-ops/guest-operation.js';
import { GuestOperationRunner } from '../guest-ops/guest-operation.runner.js';
import { CONNECT_SPECS, executeInputOf } from '../guest-ops/operations/index.js';
import { VmReadService } from '../inventory/vm-read.service.js';
import { InventoryService } from '../inventory/inventory.service.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { TelemetryHistoryService } from '../telemetry/telemetry-history.service.js';
import { fleetSummaryMessage, isoOf, telemetryMessage } from './fleet-messages.js';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
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
 * app and on the HTTP/2 server. The guest operations' methods come from their specs
 * (GuestOperationSpec.connect), each one run through the audited path; the rest are one
 * inventory or executions call each.
 */
@Injectable()
export class VmServiceRoutes {
  constructor(
    @Inject(GuestOperationRunner) private readonly runner: GuestOperationRunner,
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(VmReadService) private readonly reads: VmReadService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
    @Inject(ExecutionsService) private readonly executions: ExecutionsService,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(TelemetryHistoryService) private readonly history: TelemetryHistoryService,
  ) {}

  register(router: ConnectRouter): void {
    const impl: Partial<ServiceImpl<typeof VMService>> = {
      listVMs: (_req, ctx) =>
        this.metrics.measure('list', async () =>
          create(ListVMsResponseSchema, {
            vms: await this.inventory.listVms(projectsWith(callerOf(ctx).principal, 'vm.read')),
          }),
        ),
      getVM: (req, ctx) =>
        this.metrics.measure('get', async () =>
          create(GetVMResponseSchema, { vm: await this.reads.getVm(callerOf(ctx), req.vmId) }),
        ),
      getVMTelemetry: (req, ctx) =>
        this.metrics.measure('telemetry', async () => {
          const vm = await this.reads.getVm(callerOf(ctx), req.vmId);
          return telemetryMessage(
            await this.history.series(vm.id, { from: isoOf(req.from), to: isoOf(req.to) }),
          );
        }),
      getFleetSummary: (req, ctx) =>
        this.metrics.measure('fleet.summary', async () =>
          fleetSummaryMessage(
            await this.history.summary(projectsWith(callerOf(ctx).principal, 'vm.read'), {
              top: req.top === 0 ? undefined : req.top,
              diskPercent: req.diskPercent,
            }),
          ),
        ),
      startExecution: (req, ctx) =>
        this.metrics.measure('execution.start', async () => {
          const e = req.execute;
          if (!e) {
            throw new VmGuestException(VmGuestErrorCode.INVALID_REQUEST, 'execute is required');
          }
          const view = await this.executions.start(e.vmId, executeInputOf(e), callerOf(ctx));
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
      streamExecutionOutput: (req, ctx) =>
        this.streamOutput(req.executionId, Number(req.afterSeq), ctx),
    };
    // Every guest operation with a VMService method: one run through the audited path.
    for (const spec of CONNECT_SPECS as Array<GuestOperationSpec<unknown, unknown>>) {
      const binding = spec.connect!;
      const method = VMService.method[binding.method];
      Object.assign(impl, {
        [binding.method]: async (req: MethodInput<UnaryMethod>, ctx: HandlerContext) => {
          const { vmId, input } = binding.input(req);
          const result = await this.runner.run(spec, callerOf(ctx), vmId, input);
          return create(method.output, binding.output(result, req) as never);
        },
      });
    }
    router.service(VMService, impl);
  }

  /**
   * The output as a server stream: chunks as they come, then the end. The queue between the
   * follower and the stream is bounded (LQ_EXEC_FOLLOW_BUFFER_BYTES): past it the follower waits
   * for the client to take what is queued and catches up from the store.
   */
  private async *streamOutput(
    executionId: string,
    afterSeq: number,
    ctx: HandlerContext,
  ): AsyncGenerator<StreamExecutionOutputResponse> {
    const maxQueued = this.config.output.followBufferBytes;
    const queue: Array<{ message: StreamExecutionOutputResponse; bytes: number }> = [];
    let queued = 0;
    let wake: (() => void) | undefined;
    let onDrained: (() => void) | undefined;
    let ended = false;
    const push = (message: StreamExecutionOutputResponse, bytes: number) => {
      queue.push({ message, bytes });
      queued += bytes;
      wake?.();
    };
    const sink: FollowSink = {
      chunk: (c) => {
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
          c.data.length,
        );
        return queued < maxQueued;
      },
      drained: () =>
        new Promise<void>((resolve) => {
          if (queued === 0 || ctx.signal.aborted) {
            resolve();
            return;
          }
          onDrained = resolve;
        }),
      end: (view) => {
        ended = true;
        push(
          create(StreamExecutionOutputResponseSchema, {
            event: { case: 'end', value: executionMessage(view) },
          }),
          0,
        );
      },
    };
    const stop = await this.executions.follow(executionId, callerOf(ctx), afterSeq, sink);
    ctx.signal.addEventListener('abort', () => {
      wake?.();
      onDrained?.();
    });
    try {
      for (;;) {
        while (queue.length > 0) {
          const next = queue.shift()!;
          queued -= next.bytes;
          yield next.message;
        }
        if (onDrained) {
          const resolve = onDrained;
          onDrained = undefined;
          resolve();
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
