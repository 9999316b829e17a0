import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import {
  AuthException,
  AuthRepository,
  AuthService,
  isGlobalAdmin,
  parseRestrictions,
  passwordProblem,
  projectsWith,
  type ApiKeyRow,
  type BindingRow,
  type ProjectRow,
  type UserRow,
} from '@lq/auth';
import { actorOf } from '../audit/audit-actor.js';
import { AdminScopeService } from './admin-scope.service.js';
import { AccessErrorCode, AccessException } from './access.exception.js';
import type { Caller } from '../common/caller.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Users, API keys, projects, bindings and VM placement. Two scopes of administration:
 * - a global admin (an admin binding without a project) manages users, other users' keys,
 *   global bindings, projects, and moves VMs between projects;
 * - a project admin manages bindings in its own projects (and, in VmLabels, their VMs' labels),
 *   and sees only those.
 * Everyone manages its own API keys (and, through /api/auth/password, its own password).
 * Every change is an `admin` row in the audit trail, every refusal a `denied` row; a password
 * never is.
 */
@Injectable()
export class AccessAdminService {
  constructor(
    @Inject(AuthRepository) private readonly repo: AuthRepository,
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(AdminScopeService) private readonly scopes: AdminScopeService,
  ) {}

  async listUsers(caller: Caller): Promise<UserRow[]> {
    await this.requireGlobal(caller, 'user.list');
    return this.repo.listUsers();
  }

  async createUser(caller: Caller, username: string, password?: string): Promise<UserRow> {
    await this.requireGlobal(caller, 'user.create');
    const hash = password === undefined ? null : await this.hash(password);
    const user = await this.repo.createUser(username, hash);
    if (!user) {
      throw new AccessException(AccessErrorCode.CONFLICT, `user ${username} already exists`);
    }
    await this.record(caller, 'user.create', {
      user: username,
      password_set: password !== undefined,
    });
    return user;
  }

  /** A password reset or disabling (global admin): either ends the user's sessions. */
  async updateUser(
    caller: Caller,
    id: string,
    change: { password?: string; disabled?: boolean },
  ): Promise<UserRow> {
    await this.requireGlobal(caller, 'user.update');
    const userId = await this.userId(id);
    const hash = change.password === undefined ? undefined : await this.hash(change.password);
    const user = await this.repo.updateUser(userId, {
      passwordHash: hash,
      disabled: change.disabled,
    });
    if (!user) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `user ${id} does not exist`);
    }
    this.auth.forget((p) => p.userId === userId);
    await this.record(caller, 'user.update', {
      user: user.username,
      password_set: change.password !== undefined || undefined,
      disabled: change.disabled,
    });
    return user;
  }

  async createApiKey(
    caller: Caller,
    user: string,
    name: string,
    expiresInDays?: number,
  ): Promise<ApiKeyRow & { token: string }> {
    await this.requireSelfOrGlobal(caller, user, 'api_key.create');
    const userId = await this.userId(user);
    const expires = expiresInDays ? new Date(Date.now() + expiresInDays * 86_400_000) : null;
    const { key, token } = await this.auth.createApiKey(userId, name, expires);
    await this.record(caller, 'api_key.create', {
      user,
      key: key.prefix,
      name,
      expires_at: expires?.toISOString(),
    });
    return { ...key, token };
  }

  async listApiKeys(caller: Caller, user: string): Promise<ApiKeyRow[]> {
    await this.requireSelfOrGlobal(caller, user, 'api_key.list');
    return this.repo.listApiKeys(await this.userId(user));
  }

  async revokeApiKey(caller: Caller, id: string): Promise<ApiKeyRow> {
    if (!UUID.test(id)) {
      throw new AccessException(AccessErrorCode.INVALID, 'api key id must be a UUID');
    }
    const owner = await this.repo.apiKeyOwner(id);
    if (!owner) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `API key ${id} does not exist`);
    }
    await this.requireSelfOrGlobal(caller, owner, 'api_key.revoke');
    const key = await this.repo.revokeApiKey(id);
    if (!key) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `API key ${id} does not exist`);
    }
    this.auth.forget((p) => p.keyId === id);
    await this.record(caller, 'api_key.revoke', { key: key.prefix });
    return key;
  }

  /** Every project for a global admin; the projects it administers for a project admin. */
  async listProjects(caller: Caller): Promise<ProjectRow[]> {
    const scope = projectsWith(caller.principal, 'admin');
    const all = await this.repo.listProjects();
    return scope === 'all' ? all : all.filter((p) => scope.includes(p.id));
  }

  async createProject(caller: Caller, id: string, name: string): Promise<ProjectRow> {
    await this.requireGlobal(caller, 'project.create');
    const project = await this.repo.createProject(id, name);
    if (!project) {
      throw new AccessException(AccessErrorCode.CONFLICT, `project ${id} already exists`);
    }
    await this.record(caller, 'project.create', { project: id, name });
    return project;
  }

  /** Every binding for a global admin; those of its projects for a project admin. */
  async listBindings(caller: Caller): Promise<BindingRow[]> {
    const scope = projectsWith(caller.principal, 'admin');
    const all = await this.repo.listBindings();
    return scope === 'all'
      ? all
      : all.filter((b) => b.project_id !== null && scope.includes(b.project_id));
  }

  async createBinding(
    caller: Caller,
    user: string,
    role: string,
    project: string | undefined,
    restrictions: unknown,
  ): Promise<BindingRow> {
    if (project === undefined) {
      await this.requireGlobal(caller, 'binding.create', 'a global binding');
    } else {
      await this.requireProjectAdmin(caller, project, 'binding.create');
    }
    const { id: userId, username } = await this.userOf(user);
    if (project !== undefined) {
      await this.projectMustExist(project);
    }
    let parsed;
    try {
      parsed = parseRestrictions(restrictions);
    } catch (err) {
      throw new AccessException(AccessErrorCode.INVALID, (err as Error).message);
    }
    const binding = await this.repo.createBinding(userId, role, project ?? null, parsed);
    if (!binding) {
      throw new AccessException(AccessErrorCode.CONFLICT, 'binding could not be created');
    }
    this.auth.forget((p) => p.userId === userId);
    await this.record(
      caller,
      'binding.create',
      { user, role, project: project ?? '*', restrictions: parsed },
      undefined,
      project,
    );
    // The username, whether the caller named the user by it or by its id.
    return { ...binding, username };
  }

  async deleteBinding(caller: Caller, id: string): Promise<void> {
    if (!UUID.test(id)) {
      throw new AccessException(AccessErrorCode.INVALID, 'binding id must be a UUID');
    }
    const existing = await this.repo.bindingById(id);
    if (!existing) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `binding ${id} does not exist`);
    }
    if (existing.project_id === null) {
      await this.requireGlobal(caller, 'binding.delete', 'a global binding');
    } else {
      await this.requireProjectAdmin(caller, existing.project_id, 'binding.delete');
    }
    const b = await this.repo.deleteBinding(id);
    if (!b) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `binding ${id} does not exist`);
    }
    this.auth.forget((p) => p.userId === b.user_id);
    await this.record(
      caller,
      'binding.delete',
      { user_id: b.user_id, role: b.role, project: b.project_id ?? '*' },
      undefined,
      b.project_id ?? undefined,
    );
  }

  /** An `admin` row for what a caller did to its own account (a password change). */
  recordSelfService(caller: Caller, operation: string, params: Record<string, unknown>) {
    return this.record(caller, operation, params);
  }

  private requireGlobal(caller: Caller, operation: string, what = operation): Promise<void> {
    return this.scopes.requireGlobal(caller, operation, what);
  }

  private requireProjectAdmin(caller: Caller, project: string, operation: string): Promise<void> {
    return this.scopes.requireProject(caller, project, operation);
  }

  /** `user` (an id or a username) must be the caller itself, unless it is a global admin. */
  private async requireSelfOrGlobal(
    caller: Caller,
    user: string,
    operation: string,
  ): Promise<void> {
    const p = caller.principal;
    if (user !== p.userId && user !== p.username && !isGlobalAdmin(p)) {
      await this.scopes.deny(
        caller,
        operation,
        'another user’s API keys need a global admin binding',
      );
      throw AuthException.denied('admin', 'globally (another user’s API keys)');
    }
  }

  private async hash(password: string): Promise<string> {
    const problem = passwordProblem(password);
    if (problem) {
      throw new AccessException(AccessErrorCode.INVALID, `password ${problem}`);
    }
    return this.auth.hashPassword(password);
  }

  /** A user id from an id or a username. */
  private async userId(idOrName: string): Promise<string> {
    return (await this.userOf(idOrName)).id;
  }

  /** A user named by its id or its username. */
  private async userOf(idOrName: string): Promise<{ id: string; username: string }> {
    if (UUID.test(idOrName)) {
      const u = await this.repo.userById(idOrName);
      if (u) {
        return u;
      }
    }
    const u = await this.repo.userForLogin(idOrName);
    if (!u) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `user ${idOrName} does not exist`);
    }
    return u;
  }

  private async projectMustExist(id: string): Promise<void> {
    if (!(await this.repo.projectExists(id))) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `project ${id} does not exist`);
    }
  }

  private record(
    caller: Caller,
    operation: string,
    params: Record<string, unknown>,
    vmId?: string,
    projectId?: string,
  ): Promise<void> {
    return this.audit.record({
      kind: 'admin',
      ...actorOf(caller.principal, caller),
      operation,
      params,
      vmId,
      projectId,
      status: 'ok',
    });
  }
}
