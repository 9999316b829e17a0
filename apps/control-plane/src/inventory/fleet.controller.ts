import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { FleetSummaryView, TelemetrySeriesView } from '@lq/api';
import { RequirePermission, projectsWith } from '@lq/auth';
import { CurrentCaller, type Caller } from '../common/caller.js';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import { TelemetryHistoryService } from '../telemetry/telemetry-history.service.js';
import { FleetSummaryQueryDto, TelemetrySeriesQueryDto } from './dto/telemetry-query.dto.js';
import { VmReadService } from './vm-read.service.js';

/**
 * The fleet dashboard's reads: a VM's telemetry history, and aggregates over the VMs the caller
 * may read (vm.read, scoped by project like GET /api/vms).
 */
@ApiTags('inventory')
@ApiBearerAuth()
@Controller('api')
export class FleetController {
  constructor(
    @Inject(VmReadService) private readonly reads: VmReadService,
    @Inject(TelemetryHistoryService) private readonly history: TelemetryHistoryService,
  ) {}

  @Get('vms/:id/telemetry')
  @RequirePermission('vm.read')
  @ApiOperation({
    summary:
      'A VM’s telemetry history over [from, to): 1-minute points within the last 24 h, else 15-minute points (LQ_TELEMETRY_*)',
  })
  @ApiParam({ name: 'id', description: 'VM id' })
  @ApiAnswers(200, 'TelemetrySeriesView', [404])
  async series(
    @Param('id') id: string,
    @Query() q: TelemetrySeriesQueryDto,
    @CurrentCaller() caller: Caller,
  ): Promise<TelemetrySeriesView> {
    const vm = await this.reads.getVm(caller, id);
    return this.history.series(vm.id, { from: q.from, to: q.to });
  }

  @Get('fleet/summary')
  @RequirePermission('vm.read')
  @ApiOperation({
    summary:
      'The dashboard’s aggregates over the VMs the caller may read: by agent state and version, top VMs by CPU, memory, disk and network, full filesystems',
  })
  @ApiAnswers(200, 'FleetSummaryView')
  summary(
    @Query() q: FleetSummaryQueryDto,
    @CurrentCaller() caller: Caller,
  ): Promise<FleetSummaryView> {
    return this.history.summary(projectsWith(caller.principal, 'vm.read'), {
      top: q.top === undefined ? undefined : Number(q.top),
      diskPercent: q.disk_percent === undefined ? undefined : Number(q.disk_percent),
    });
  }
}
