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
import { RequirePermission } from '@lq/auth';
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

/** Administration of users, API keys, projects, role bindings and VM placement. */
@ApiTags('administration')
@ApiBearerAuth()
@Controller('api')
export class AccessAdminController {
  constructor(@Inject(AccessAdminService) private readonly admin: AccessAdminService) {}

  @Get('users')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Every user (never a password or key hash)' })
  async listUsers() {
    return { users: await this.admin.listUsers() };
  }

  @Post('users')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Create a user (bind roles to it with /api/role-bindings)' })
  createUser(@Body() body: CreateUserDto, @Req() req: Request) {
    return this.admin.createUser(restCaller(req), body.username, body.password);
  }

  @Patch('users/:user')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Set a user’s password or disable it (by id or username)' })
  updateUser(@Param('user') user: string, @Body() body: UpdateUserDto, @Req() req: Request) {
    return this.admin.updateUser(restCaller(req), user, body);
  }

  @Get('users/:user/api-keys')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'A user’s API keys (prefix, expiry, last use, revocation)' })
  async listKeys(@Param('user') user: string) {
    return { api_keys: await this.admin.listApiKeys(user) };
  }

  @Post('users/:user/api-keys')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Create an API key; `token` is shown this once and never stored' })
  createKey(@Param('user') user: string, @Body() body: CreateApiKeyDto, @Req() req: Request) {
    return this.admin.createApiKey(restCaller(req), user, body.name ?? '', body.expires_in_days);
  }

  @Delete('api-keys/:id')
  @RequirePermission('admin')
  @ApiOperation({
    summary:
      'Revoke an API key (takes effect at once here, within LQ_AUTH_CACHE_SECONDS elsewhere)',
  })
  revokeKey(@Param('id') id: string, @Req() req: Request) {
    return this.admin.revokeApiKey(restCaller(req), id);
  }

  @Get('projects')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Every project and how many VMs it holds' })
  async listProjects() {
    return { projects: await this.admin.listProjects() };
  }

  @Post('projects')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Create a project' })
  createProject(@Body() body: CreateProjectDto, @Req() req: Request) {
    return this.admin.createProject(restCaller(req), body.id, body.name ?? '');
  }

  @Put('vms/:id/project')
  @RequirePermission('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Move a VM to a project (new VMs start in "default")' })
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
  @ApiOperation({ summary: 'Every role binding' })
  async listBindings() {
    return { role_bindings: await this.admin.listBindings() };
  }

  @Post('role-bindings')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Bind a role to a user, on one project or (without project) on all' })
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
  @ApiOperation({ summary: 'Remove a role binding' })
  async deleteBinding(@Param('id') id: string, @Req() req: Request): Promise<void> {
    await this.admin.deleteBinding(restCaller(req), id);
  }
}
