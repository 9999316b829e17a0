import {
  Controller,
  Get,
  Inject,
  Logger,
  Param,
  Req,
  Res,
  type BeforeApplicationShutdown,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiAnswers, EVENT_STREAM } from '../common/openapi/api-answers.js';
import { create, fromBinary } from '@bufbuild/protobuf';
import type { Request, Response } from 'express';
import { openEventStream } from '../common/sse.js';
import { VmTelemetrySchema, subjects, type VmTelemetry } from '@lq/proto';
import type { NodeListView, VmListView, VmView } from '@lq/api';
import { RequirePermission, projectsWith } from '@lq/auth';
import { InventoryErrorCode, InventoryException } from './inventory.exception.js';
import { VmReadService } from './vm-read.service.js';
import { CurrentCaller, restCaller, type Caller } from '../common/caller.js';
import { NatsService } from '../nats/nats.service.js';
import { InventoryService } from './inventory.service.js';
import { AgentReleaseCatalog } from '../downloads/agent-release-catalog.js';
import { nodeView, telemetryEventView, vmView } from './vm.view.js';

const SSE_KEEPALIVE_MS = 15_000;

/** One Server-Sent Events frame carrying a VmTelemetry (TelemetryEventView). */
export function telemetryEvent(t: VmTelemetry): string {
  return `event: telemetry\ndata: ${JSON.stringify(telemetryEventView(t))}\n\n`;
}

/** The inventory, read side: VMs with their agent state and latest telemetry, and nodes. */
@ApiTags('inventory')
@ApiBearerAuth()
@Controller('api')
export class InventoryController implements BeforeApplicationShutdown {
  private readonly log = new Logger('inventory');
  /** Open telemetry streams, ended at shutdown so the HTTP server can close. */
  private readonly streams = new Set<Response>();

  constructor(
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(VmReadService) private readonly reads: VmReadService,
    @Inject(AgentReleaseCatalog) private readonly releases: AgentReleaseCatalog,
  ) {}

  @Get('vms')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'The VMs of the projects the caller may read, ordered by id' })
  @ApiAnswers(200, 'VmListView')
  async listVms(@Req() req: Request): Promise<VmListView> {
    const vms = await this.inventory.listVms(projectsWith(restCaller(req).principal, 'vm.read'));
    const latest = this.releases.latest();
    return { vms: vms.map((vm) => vmView(vm, latest)) };
  }

  @Get('vms/:id')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'One VM with its agent state, facts and latest telemetry' })
  @ApiParam({ name: 'id', description: 'VM id' })
  @ApiAnswers(200, 'VmView', [404])
  async getVm(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<VmView> {
    return vmView(await this.reads.getVm(caller, id), this.releases.latest());
  }

  @Get('nodes')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Every node and whether its heartbeat is stale' })
  @ApiAnswers(200, 'NodeListView')
  async listNodes(): Promise<NodeListView> {
    return { nodes: (await this.inventory.listNodes()).map(nodeView) };
  }

  /**
   * Server-Sent Events: the stored report first (when there is one), then each report as the
   * VM's node publishes it. Every replica subscribes on its own (no queue group) for its own
   * clients.
   */
  @Get('vms/:id/telemetry/stream')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Live telemetry of a VM as Server-Sent Events (event: telemetry)' })
  @ApiParam({ name: 'id', description: 'VM id' })
  @ApiProduces('text/event-stream')
  @ApiAnswers(200, EVENT_STREAM, [404, 503], 'Events telemetry (TelemetryEventView)')
  async streamTelemetry(
    @Param('id') id: string,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    const vm = await this.reads.getVm(restCaller(req), id);
    let nc;
    try {
      nc = this.nats.connection;
    } catch {
      throw new InventoryException(InventoryErrorCode.NODE_UNAVAILABLE, 'NATS is not connected');
    }
    openEventStream(res);
    if (vm.telemetry) {
      res.write(
        telemetryEvent(
          create(VmTelemetrySchema, {
            nodeId: vm.nodeId,
            vmId: vm.id,
            timestamp: vm.telemetryAt,
            report: vm.telemetry,
          }),
        ),
      );
    }
    // Any node: the VM may move while the client watches. Only its owner's reports are shown
    // (another node's claim on the VM is refused, and so are its reports).
    let owner = vm.nodeId;
    const sub = nc.subscribe(subjects.telemetry('*', vm.id), {
      callback: (err, msg) => {
        if (err) {
          this.log.warn(`telemetry stream of ${vm.id}: ${err.message}`);
          res.end();
          return;
        }
        let t: VmTelemetry;
        try {
          t = fromBinary(VmTelemetrySchema, msg.data);
        } catch (e) {
          this.log.warn(`dropped ${msg.subject}: ${(e as Error).message}`);
          return;
        }
        if (t.vmId !== vm.id || msg.subject !== subjects.telemetry(t.nodeId, vm.id)) {
          return;
        }
        if (t.nodeId === owner) {
          res.write(telemetryEvent(t));
          return;
        }
        void this.inventory.locate(vm.id).then(
          (at) => {
            owner = at.nodeId;
            if (t.nodeId === owner) {
              res.write(telemetryEvent(t));
            }
          },
          () => undefined,
        );
      },
    });
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
    this.streams.add(res);
    const close = () => {
      this.streams.delete(res);
      clearInterval(keepalive);
      if (!sub.isClosed()) {
        sub.unsubscribe();
      }
    };
    req.once('close', close);
    res.once('close', close);
  }

  beforeApplicationShutdown(): void {
    for (const res of this.streams) {
      res.end();
    }
  }
}
