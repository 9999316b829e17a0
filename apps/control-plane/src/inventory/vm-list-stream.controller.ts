import {
  Controller,
  Get,
  Inject,
  Param,
  Req,
  Res,
  ServiceUnavailableException,
  type BeforeApplicationShutdown,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiAnswers, EVENT_STREAM } from '../common/openapi/api-answers.js';
import type { Request, Response } from 'express';
import type { AgentSessionView } from '@lq/api';
import { openEventStream } from '../common/sse.js';
import { RequirePermission, projectsWith } from '@lq/auth';
import { CurrentCaller, restCaller, type Caller } from '../common/caller.js';
import { VmReadService } from './vm-read.service.js';
import { InventoryService } from './inventory.service.js';
import { VM_LIST_POLL_MS, VmListFeed } from './vm-list.feed.js';

/** Open list streams per replica; one more is refused (503) rather than queued. */
export const VM_STREAMS_MAX = 500;
const KEEPALIVE_MS = 15_000;
/**
 * A stream ends after this long and the browser reconnects, so a revoked key, an expired token
 * or a changed role binding takes effect on a watcher too.
 */
export const VM_STREAM_LIFETIME_MS = 5 * 60_000;
/** A client that reads slower than this much buffered output is cut off. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

/** The live VM list (Server-Sent Events, what the web console shows) and agent sessions. */
@ApiTags('inventory')
@ApiBearerAuth()
@Controller('api/vms')
export class VmListStreamController implements BeforeApplicationShutdown {
  private readonly streams = new Set<Response>();

  constructor(
    @Inject(VmListFeed) private readonly feed: VmListFeed,
    @Inject(VmReadService) private readonly reads: VmReadService,
    @Inject(InventoryService) private readonly inventory: InventoryService,
  ) {}

  @Get(':id/agent-session')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Since when the VM’s agent has been connected, and when last seen' })
  @ApiParam({ name: 'id', description: 'VM id' })
  @ApiAnswers(200, 'AgentSessionView', [404])
  async agentSession(
    @Param('id') id: string,
    @CurrentCaller() caller: Caller,
  ): Promise<AgentSessionView> {
    const vm = await this.reads.getVm(caller, id);
    const since = (await this.inventory.connectedSince([vm.id])).get(vm.id) ?? null;
    return {
      vm_id: vm.id,
      agent_state: vm.agentState,
      connected_since: vm.agentState === 'ready' ? since : null,
    };
  }

  @Get('stream')
  @RequirePermission('vm.read')
  @ApiOperation({
    summary:
      'The VMs the caller may read as Server-Sent Events: `event: vms` with { vms: [summary…] } at once and on every change (checked every 2 s), `event: error` when the inventory cannot be read',
  })
  @ApiProduces('text/event-stream')
  @ApiAnswers(
    200,
    EVENT_STREAM,
    [],
    'Events vms (VmListSnapshotView) on change, error (VmListErrorView)',
  )
  stream(@Req() req: Request, @Res() res: Response): void {
    const scope = projectsWith(restCaller(req).principal, 'vm.read');
    if (this.streams.size >= VM_STREAMS_MAX) {
      throw new ServiceUnavailableException(
        `this replica already serves ${VM_STREAMS_MAX} VM list streams; poll GET /api/vms instead`,
      );
    }
    openEventStream(res);
    res.write(`retry: ${VM_LIST_POLL_MS}\n\n`);
    this.streams.add(res);
    const send = (text: string) => {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        res.destroy();
        return;
      }
      res.write(text);
    };
    const unsubscribe = this.feed.subscribe(scope, (e) =>
      send(`event: ${e.kind}\ndata: ${e.json}\n\n`),
    );
    const keepalive = setInterval(() => send(': keepalive\n\n'), KEEPALIVE_MS);
    const lifetime = setTimeout(() => res.end(), VM_STREAM_LIFETIME_MS);
    const close = () => {
      this.streams.delete(res);
      clearInterval(keepalive);
      clearTimeout(lifetime);
      unsubscribe();
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
