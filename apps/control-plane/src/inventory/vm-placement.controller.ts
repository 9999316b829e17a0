import { Body, Controller, HttpCode, Inject, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import { RequirePermission } from '@lq/auth';
import { CurrentCaller, type Caller } from '../common/caller.js';
import type { VmLabelsView, VmNodeView, VmProjectView } from '@lq/api';
import { SetLabelsDto, SetVmNodeDto, SetVmProjectDto } from './dto/vm-placement.dto.js';
import { VmPlacementService } from './vm-placement.service.js';

/** A VM's project, node and labels. */
@ApiTags('inventory')
@ApiBearerAuth()
@Controller('api/vms/:id')
export class VmPlacementController {
  constructor(@Inject(VmPlacementService) private readonly placement: VmPlacementService) {}

  @Put('project')
  @RequirePermission('admin')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Move a VM to a project (global admin; new VMs start in "default")',
  })
  @ApiAnswers(200, 'VmProjectView', [404])
  async setProject(
    @Param('id') id: string,
    @Body() body: SetVmProjectDto,
    @CurrentCaller() caller: Caller,
  ): Promise<VmProjectView> {
    await this.placement.setProject(caller, id, body.project);
    return { vm_id: id, project: body.project };
  }

  @Put('node')
  @RequirePermission('admin')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Move a VM to another node (after a migration): that node’s claims are accepted from now on, the previous node’s refused; global admins only',
  })
  @ApiAnswers(200, 'VmNodeView', [404])
  async setNode(
    @Param('id') id: string,
    @Body() body: SetVmNodeDto,
    @CurrentCaller() caller: Caller,
  ): Promise<VmNodeView> {
    const previous = await this.placement.setNode(caller, id, body.node);
    return { vm_id: id, node: body.node, previous_node: previous };
  }

  @Put('labels')
  @RequirePermission('admin')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Replace a VM’s labels (fleet runs target them); an admin of the VM’s project',
  })
  @ApiAnswers(200, 'VmLabelsView', [404])
  setLabels(
    @Param('id') id: string,
    @Body() body: SetLabelsDto,
    @CurrentCaller() caller: Caller,
  ): Promise<VmLabelsView> {
    return this.placement.setLabels(caller, id, body.labels);
  }
}
