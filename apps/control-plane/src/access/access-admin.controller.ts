import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Patch,
  Post,
  Put,
  Req,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { Authenticated, RequirePermission } from '@lq/auth';
import { isSubjectToken } from '@lq/proto';
import { AccessAdminService } from './access-admin.service.js';
import { AccessErrorCode, AccessException } from './access.exception.js';
import {
  CreateApiKeyDto,
  CreateBindingDto,
  CreateProjectDto,
  CreateUserDto,
  SetVmNodeDto,
  SetVmProjectDto,
  UpdateUserDto,
} from './dto/access.dto.js';
import { restCaller } from './rest-caller.js';

/**
 * Administration of users, API keys, projects, role bindings and VM placement. The guard checks
 * `admin` somewhere; AccessAdminService decides the scope (global admin, or admin of the project
 * concerned; a user's own keys for anyone).
 */
@ApiTags('administration')
@ApiBearerAuth()
@Controller('api')
export class AccessAdminController {
  constructor(@Inject(AccessAdminService) private readonly admin: AccessAdminService) {}

  @Get('users')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Every user (global admin; never a password or key hash)' })
  async listUsers(@Req() req: Request) {
    return { users: await this.admin.listUsers(restCaller(req)) };
  }

  @Post('users')
  @RequirePermission('admin')
  @ApiOperation({
    summary: 'Create a user (global admin; bind roles to it with /api/role-bindings)',
  })
  createUser(@Body() body: CreateUserDto, @Req() req: Request) {
    return this.admin.createUser(restCaller(req), body.username, body.password);
  }

  @Patch('users/:user')
  @RequirePermission('admin')
  @ApiOperation({
    summary:
      'Reset a user’s password or disable it (global admin; by id or username); either ends its sessions',
  })
  updateUser(@Param('user') user: string, @Body() body: UpdateUserDto, @Req() req: Request) {
    return this.admin.updateUser(restCaller(req), user, body);
  }

  @Get('users/:user/api-keys')
  @Authenticated()
  @ApiOperation({
    summary:
      'A user’s API keys (prefix, expiry, last use, revocation): your own, or any as global admin',
  })
  async listKeys(@Param('user') user: string, @Req() req: Request) {
    return { api_keys: await this.admin.listApiKeys(restCaller(req), user) };
  }

  @Post('users/:user/api-keys')
  @Authenticated()
  @ApiOperation({
    summary:
      'Create an API key (for yourself, or anyone as global admin); `token` is shown this once and never stored',
  })
  createKey(@Param('user') user: string, @Body() body: CreateApiKeyDto, @Req() req: Request) {
    return this.admin.createApiKey(restCaller(req), user, body.name ?? '', body.expires_in_days);
  }

  @Delete('api-keys/:id')
  @Authenticated()
  @ApiOperation({
    summary:
      'Revoke an API key, yours or (global admin) anyone’s; at once here, within LQ_AUTH_CACHE_SECONDS elsewhere',
  })
  revokeKey(@Param('id') id: string, @Req() req: Request) {
    return this.admin.revokeApiKey(restCaller(req), id);
  }

  @Get('projects')
  @RequirePermission('admin')
  @ApiOperation({
    summary: 'The projects you administer (every one as global admin) and their VM counts',
  })
  async listProjects(@Req() req: Request) {
    return { projects: await this.admin.listProjects(restCaller(req)) };
  }

  @Post('projects')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Create a project (global admin)' })
  createProject(@Body() body: CreateProjectDto, @Req() req: Request) {
    return this.admin.createProject(restCaller(req), body.id, body.name ?? '');
  }

  @Put('vms/:id/project')
  @RequirePermission('admin')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Move a VM to a project (global admin; new VMs start in "default")',
  })
  async setVmProject(@Param('id') id: string, @Body() body: SetVmProjectDto, @Req() req: Request) {
    if (!isSubjectToken(id)) {
      throw new AccessException(
        AccessErrorCode.INVALID,
        'vm id must be 1-128 letters, digits, _ or -',
      );
    }
    await this.admin.setVmProject(restCaller(req), id, body.project);
    return { vm_id: id, project: body.project };
  }

  @Put('vms/:id/node')
  @RequirePermission('admin')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Move a VM to another node (after a migration): that node’s claims are accepted from now on, the previous node’s refused; global admins only',
  })
  async setVmNode(@Param('id') id: string, @Body() body: SetVmNodeDto, @Req() req: Request) {
    if (!isSubjectToken(id)) {
      throw new AccessException(
        AccessErrorCode.INVALID,
        'vm id must be 1-128 letters, digits, _ or -',
      );
    }
    const previous = await this.admin.setVmNode(restCaller(req), id, body.node);
    return { vm_id: id, node: body.node, previous_node: previous };
  }

  @Get('role-bindings')
  @RequirePermission('admin')
  @ApiOperation({
    summary: 'The role bindings of the projects you administer (every one as global admin)',
  })
  async listBindings(@Req() req: Request) {
    return { role_bindings: await this.admin.listBindings(restCaller(req)) };
  }

  @Post('role-bindings')
  @RequirePermission('admin')
  @ApiOperation({
    summary:
      'Bind a role to a user on a project you administer, or (global admin, without project) on all',
  })
  createBinding(@Body() body: CreateBindingDto, @Req() req: Request) {
    return this.admin.createBinding(
      restCaller(req),
      body.user,
      body.role,
      body.project,
      body.restrictions,
    );
  }

  @Delete('role-bindings/:id')
  @RequirePermission('admin')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Remove a role binding of a project you administer (a global one: global admin)',
  })
  async deleteBinding(@Param('id') id: string, @Req() req: Request): Promise<void> {
    await this.admin.deleteBinding(restCaller(req), id);
  }
}
