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
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiAnswers } from '../common/openapi/api-answers.js';
import { Authenticated, RequirePermission } from '@lq/auth';
import { AccessAdminService } from './access-admin.service.js';
import {
  CreateApiKeyDto,
  CreateBindingDto,
  CreateProjectDto,
  CreateUserDto,
  UpdateUserDto,
} from './dto/access.dto.js';
import { CurrentCaller, type Caller } from '../common/caller.js';
import type {
  ApiKeyListView,
  ApiKeyView,
  CreatedApiKeyView,
  ProjectListView,
  ProjectView,
  RoleBindingListView,
  RoleBindingView,
  UserListView,
  UserView,
} from '@lq/api';
import { apiKeyView, projectView, roleBindingView, userView } from './access.views.js';

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
  @ApiAnswers(200, 'UserListView')
  async listUsers(@CurrentCaller() caller: Caller): Promise<UserListView> {
    return { users: (await this.admin.listUsers(caller)).map(userView) };
  }

  @Post('users')
  @RequirePermission('admin')
  @ApiOperation({
    summary: 'Create a user (global admin; bind roles to it with /api/role-bindings)',
  })
  @ApiAnswers(201, 'UserView', [409])
  async createUser(
    @Body() body: CreateUserDto,
    @CurrentCaller() caller: Caller,
  ): Promise<UserView> {
    return userView(await this.admin.createUser(caller, body.username, body.password));
  }

  @Patch('users/:user')
  @RequirePermission('admin')
  @ApiOperation({
    summary:
      'Reset a user’s password or disable it (global admin; by id or username); either ends its sessions',
  })
  @ApiAnswers(200, 'UserView', [404])
  async updateUser(
    @Param('user') user: string,
    @Body() body: UpdateUserDto,
    @CurrentCaller() caller: Caller,
  ): Promise<UserView> {
    return userView(await this.admin.updateUser(caller, user, body));
  }

  @Get('users/:user/api-keys')
  @Authenticated()
  @ApiOperation({
    summary:
      'A user’s API keys (prefix, expiry, last use, revocation): your own, or any as global admin',
  })
  @ApiAnswers(200, 'ApiKeyListView', [404])
  async listKeys(
    @Param('user') user: string,
    @CurrentCaller() caller: Caller,
  ): Promise<ApiKeyListView> {
    return { api_keys: (await this.admin.listApiKeys(caller, user)).map(apiKeyView) };
  }

  @Post('users/:user/api-keys')
  @Authenticated()
  @ApiOperation({
    summary:
      'Create an API key (for yourself, or anyone as global admin); `token` is shown this once and never stored',
  })
  @ApiAnswers(201, 'CreatedApiKeyView', [404])
  async createKey(
    @Param('user') user: string,
    @Body() body: CreateApiKeyDto,
    @CurrentCaller() caller: Caller,
  ): Promise<CreatedApiKeyView> {
    const created = await this.admin.createApiKey(
      caller,
      user,
      body.name ?? '',
      body.expires_in_days,
    );
    return { ...apiKeyView(created), token: created.token };
  }

  @Delete('api-keys/:id')
  @Authenticated()
  @ApiOperation({
    summary:
      'Revoke an API key, yours or (global admin) anyone’s; at once here, within LQ_AUTH_CACHE_SECONDS elsewhere',
  })
  @ApiAnswers(200, 'ApiKeyView', [404])
  async revokeKey(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<ApiKeyView> {
    return apiKeyView(await this.admin.revokeApiKey(caller, id));
  }

  @Get('projects')
  @RequirePermission('admin')
  @ApiOperation({
    summary: 'The projects you administer (every one as global admin) and their VM counts',
  })
  @ApiAnswers(200, 'ProjectListView')
  async listProjects(@CurrentCaller() caller: Caller): Promise<ProjectListView> {
    return { projects: (await this.admin.listProjects(caller)).map(projectView) };
  }

  @Post('projects')
  @RequirePermission('admin')
  @ApiOperation({ summary: 'Create a project (global admin)' })
  @ApiAnswers(201, 'ProjectView', [409])
  async createProject(
    @Body() body: CreateProjectDto,
    @CurrentCaller() caller: Caller,
  ): Promise<ProjectView> {
    return projectView(await this.admin.createProject(caller, body.id, body.name ?? ''));
  }

  @Get('role-bindings')
  @RequirePermission('admin')
  @ApiOperation({
    summary: 'The role bindings of the projects you administer (every one as global admin)',
  })
  @ApiAnswers(200, 'RoleBindingListView')
  async listBindings(@CurrentCaller() caller: Caller): Promise<RoleBindingListView> {
    return { role_bindings: (await this.admin.listBindings(caller)).map(roleBindingView) };
  }

  @Post('role-bindings')
  @RequirePermission('admin')
  @ApiOperation({
    summary:
      'Bind a role to a user on a project you administer, or (global admin, without project) on all',
  })
  @ApiAnswers(201, 'RoleBindingView', [404, 409])
  async createBinding(
    @Body() body: CreateBindingDto,
    @CurrentCaller() caller: Caller,
  ): Promise<RoleBindingView> {
    return roleBindingView(
      await this.admin.createBinding(caller, body.user, body.role, body.project, body.restrictions),
    );
  }

  @Delete('role-bindings/:id')
  @RequirePermission('admin')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Remove a role binding of a project you administer (a global one: global admin)',
  })
  @ApiAnswers(204, null, [404], 'Removed')
  async deleteBinding(@Param('id') id: string, @CurrentCaller() caller: Caller): Promise<void> {
    await this.admin.deleteBinding(caller, id);
  }
}
