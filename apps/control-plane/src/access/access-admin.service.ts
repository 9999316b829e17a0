import { Inject, Injectable } from '@nestjs/common';
import { AuditService } from '@lq/audit';
import {
  AuthException,
  AuthRepository,
  AuthService,
  holdsGlobally,
  parseRestrictions,
  passwordProblem,
  type ApiKeyRow,
  type BindingRow,
  type ProjectRow,
  type UserRow,
} from '@lq/auth';
import { actorOf } from '../audit/audit-actor.js';
import { InventoryService } from '../inventory/inventory.service.js';
import { AccessErrorCode, AccessException } from './access.exception.js';
import type { Caller } from './vm-access.service.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Users, API keys, projects, bindings and VM placement (admin only). Every change is an
 * `admin` row in the audit trail; a password never is.
 */
@Injectable()
export class AccessAdminService {
  constructor(
    @Inject(AuthRepository) private readonly repo: AuthRepository,
    @Inject(AuthService) private readonly auth: AuthService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(InventoryService) private readonly inventory: InventoryService,
  ) {}

  listUsers(): Promise<UserRow[]> {
    return this.repo.listUsers();
  }

  async createUser(caller: Caller, username: string, password?: string): Promise<UserRow> {
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

  async updateUser(
    caller: Caller,
    id: string,
    change: { password?: string; disabled?: boolean },
  ): Promise<UserRow> {
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

  async listApiKeys(user: string): Promise<ApiKeyRow[]> {
    return this.repo.listApiKeys(await this.userId(user));
  }

  async revokeApiKey(caller: Caller, id: string): Promise<ApiKeyRow> {
    if (!UUID.test(id)) {
      throw new AccessException(AccessErrorCode.INVALID, 'api key id must be a UUID');
    }
    const key = await this.repo.revokeApiKey(id);
    if (!key) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `API key ${id} does not exist`);
    }
    this.auth.forget((p) => p.keyId === id);
    await this.record(caller, 'api_key.revoke', { key: key.prefix });
    return key;
  }

  listProjects(): Promise<ProjectRow[]> {
    return this.repo.listProjects();
  }

  async createProject(caller: Caller, id: string, name: string): Promise<ProjectRow> {
    const project = await this.repo.createProject(id, name);
    if (!project) {
      throw new AccessException(AccessErrorCode.CONFLICT, `project ${id} already exists`);
    }
    await this.record(caller, 'project.create', { project: id, name });
    return project;
  }

  async setVmProject(caller: Caller, vmId: string, projectId: string): Promise<void> {
    await this.projectMustExist(projectId);
    if (!(await this.repo.setVmProject(vmId, projectId))) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `VM ${vmId} is not in the inventory`);
    }
    this.inventory.forget(vmId);
    await this.record(caller, 'vm.set_project', { project: projectId }, vmId, projectId);
  }

  /**
   * Moves a VM to another node, the explicit step a migration needs (the inventory refuses a
   * node's claim on a VM another node owns). Only a global admin may: the node decides where
   * the VM's commands, files and passwords go. Returns the previous node.
   */
  async setVmNode(caller: Caller, vmId: string, nodeId: string): Promise<string> {
    if (!holdsGlobally(caller.principal, 'admin')) {
      const why = 'moving a VM between nodes needs a global admin binding';
      await this.audit.record({
        kind: 'denied',
        ...actorOf(caller.principal, caller),
        operation: 'vm.set_node',
        vmId,
        params: { permission: 'admin', node: nodeId },
        status: 'PERMISSION_DENIED',
        error: `missing admin: ${why}`,
      });
      throw AuthException.denied('admin', `on every project (${why})`);
    }
    const moved = await this.inventory.moveVm(vmId, nodeId);
    if (moved === 'no-node') {
      throw new AccessException(
        AccessErrorCode.NOT_FOUND,
        `node ${nodeId} is not in the inventory`,
      );
    }
    if (moved === 'no-vm') {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `VM ${vmId} is not in the inventory`);
    }
    await this.record(
      caller,
      'vm.set_node',
      { node: nodeId, previous_node: moved.previousNode },
      vmId,
      moved.projectId,
    );
    return moved.previousNode;
  }

  listBindings(): Promise<BindingRow[]> {
    return this.repo.listBindings();
  }

  async createBinding(
    caller: Caller,
    user: string,
    role: string,
    project: string | undefined,
    restrictions: unknown,
  ): Promise<BindingRow> {
    const userId = await this.userId(user);
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
    await this.record(caller, 'binding.create', {
      user,
      role,
      project: project ?? '*',
      restrictions: parsed,
    });
    return binding;
  }

  async deleteBinding(caller: Caller, id: string): Promise<void> {
    if (!UUID.test(id)) {
      throw new AccessException(AccessErrorCode.INVALID, 'binding id must be a UUID');
    }
    const b = await this.repo.deleteBinding(id);
    if (!b) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `binding ${id} does not exist`);
    }
    this.auth.forget((p) => p.userId === b.user_id);
    await this.record(caller, 'binding.delete', {
      user_id: b.user_id,
      role: b.role,
      project: b.project_id ?? '*',
    });
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
    if (UUID.test(idOrName)) {
      const u = await this.repo.userById(idOrName);
      if (u) {
        return u.id;
      }
    }
    const u = await this.repo.userForLogin(idOrName);
    if (!u) {
      throw new AccessException(AccessErrorCode.NOT_FOUND, `user ${idOrName} does not exist`);
    }
    return u.id;
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
