import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags, ApiBody, ApiConsumes } from '@nestjs/swagger';
import { ApiAnswers, GUEST_OPERATION_ERRORS } from '../common/openapi/api-answers.js';
import type { Request } from 'express';
import type {
  ReleaseFileReceivedView,
  AgentReleaseListView,
  AgentReleaseView,
  AgentRolloutListView,
  AgentRolloutView,
  AgentUpdateView,
  AgentVersionCountsView,
} from '@lq/api';
import { Authenticated, RequirePermission } from '@lq/auth';
import { CurrentCaller, type Caller } from '../common/caller.js';
import { AgentReleaseCatalog } from '../downloads/agent-release-catalog.js';
import { AgentUpdatesService } from './agent-updates.service.js';
import { AgentRolloutDto, AgentUpdateDto } from './dto/agent-update.dto.js';
import { ReleaseImporter } from './release-importer.js';

/** The agent lifecycle: releases on offer, versions across the fleet, updates and rollouts. */
@ApiTags('agent')
@ApiBearerAuth()
@Controller('api')
export class AgentUpdatesController {
  constructor(
    @Inject(AgentUpdatesService) private readonly updates: AgentUpdatesService,
    @Inject(AgentReleaseCatalog) private readonly catalog: AgentReleaseCatalog,
    @Inject(ReleaseImporter) private readonly importer: ReleaseImporter,
  ) {}

  @Post('vms/:id/agent/update')
  // It answers once the update ended (ready or rolled back): nothing is created to point at.
  @HttpCode(200)
  @RequirePermission('guest.agent.update')
  @ApiOperation({
    summary:
      'Replace the VM’s agent with a release: sent, verified in the guest, restarted; ready or rolled back',
  })
  @ApiAnswers(200, 'AgentUpdateView', GUEST_OPERATION_ERRORS)
  update(
    @Param('id') vmId: string,
    @Body() body: AgentUpdateDto,
    @CurrentCaller() caller: Caller,
  ): Promise<AgentUpdateView> {
    return this.updates.update(caller, vmId, body);
  }

  @Get('agent/releases')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'Agent releases, newest first, with their signed executables' })
  @ApiAnswers(200, 'AgentReleaseListView')
  releases(): AgentReleaseListView {
    return this.catalog.list();
  }

  @Get('agent/versions')
  @RequirePermission('vm.read')
  @ApiOperation({ summary: 'VMs per agent version and build target, and which are outdated' })
  @ApiAnswers(200, 'AgentVersionCountsView')
  versions(@CurrentCaller() caller: Caller): Promise<AgentVersionCountsView> {
    return this.updates.versions(caller);
  }

  @Put('agent/releases/:version/files/:name')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Upload one file of a release being imported (streamed body)' })
  @ApiConsumes('application/octet-stream')
  @ApiBody({ description: 'The file’s bytes', schema: { type: 'string', format: 'binary' } })
  @ApiAnswers(200, 'ReleaseFileReceivedView', [404, 409, 413])
  upload(
    @Param('version') version: string,
    @Param('name') name: string,
    @Req() req: Request,
  ): Promise<ReleaseFileReceivedView> {
    return this.importer.receive(version, name, req as AsyncIterable<Buffer>);
  }

  @Post('agent/releases/:version/publish')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Check an uploaded release (manifest, sums, signatures) and offer it' })
  @ApiAnswers(201, 'AgentReleaseView', [404, 409])
  publish(
    @Param('version') version: string,
    @CurrentCaller() caller: Caller,
  ): Promise<AgentReleaseView> {
    return this.importer.publish(version, caller);
  }

  @Post('agent/rollouts')
  @RequirePermission('guest.agent.update')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Roll a release out over VMs: canaries first, then max_concurrency, up to max_errors',
  })
  @ApiAnswers(202, 'AgentRolloutView', [404, 409, 503])
  rollout(
    @Body() body: AgentRolloutDto,
    @CurrentCaller() caller: Caller,
  ): Promise<AgentRolloutView> {
    return this.updates.createRollout(body, caller);
  }

  @Get('agent/rollouts')
  @Authenticated()
  @ApiOperation({ summary: 'Your rollouts, newest first (all of them for auditors and admins)' })
  @ApiAnswers(200, 'AgentRolloutListView')
  rollouts(@CurrentCaller() caller: Caller): Promise<AgentRolloutListView> {
    return this.updates.listRollouts(caller);
  }

  @Get('agent/rollouts/:id')
  @Authenticated()
  @ApiOperation({ summary: 'A rollout: status, counts by step, each VM’s step and versions' })
  @ApiAnswers(200, 'AgentRolloutView', [404])
  getRollout(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<AgentRolloutView> {
    return this.updates.getRollout(id, caller);
  }
}
