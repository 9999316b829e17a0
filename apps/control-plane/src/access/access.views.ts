import type { ApiKeyView, MeView, ProjectView, RoleBindingView, UserView } from '@lq/api';
import {
  PERMISSIONS,
  ROLE_PERMISSIONS,
  projectsWith,
  type ApiKeyRow,
  type BindingRow,
  type Principal,
  type ProjectRow,
  type Role,
  type UserRow,
} from '@lq/auth';

// The administration API's JSON (@lq/api), built field by field from the rows: a column added
// to a query does not reach the API unless it is named here.

/** pg gives timestamptz as Date; a row built in code may carry a string already. */
function iso(d: Date | string): string;
function iso(d: Date | string | null): string | null;
function iso(d: Date | string | null): string | null {
  return d === null ? null : typeof d === 'string' ? d : d.toISOString();
}

export function userView(r: UserRow): UserView {
  return {
    id: r.id,
    username: r.username,
    disabled: r.disabled,
    has_password: r.has_password,
    created_at: iso(r.created_at),
  };
}

export function apiKeyView(r: ApiKeyRow): ApiKeyView {
  return {
    id: r.id,
    user_id: r.user_id,
    prefix: r.prefix,
    name: r.name,
    created_at: iso(r.created_at),
    expires_at: iso(r.expires_at),
    last_used_at: iso(r.last_used_at),
    revoked_at: iso(r.revoked_at),
  };
}

export function projectView(r: ProjectRow): ProjectView {
  return { id: r.id, name: r.name, created_at: iso(r.created_at), vm_count: r.vm_count };
}

export function roleBindingView(r: BindingRow): RoleBindingView {
  return {
    id: r.id,
    user_id: r.user_id,
    username: r.username,
    role: r.role as Role,
    project_id: r.project_id,
    // Validated by parseRestrictions before it was stored.
    restrictions: r.restrictions ?? {},
    created_at: iso(r.created_at),
  };
}

/** GET /api/auth/me: the caller, its bindings, and where it holds each permission. */
export function meView(principal: Principal): MeView {
  const permissions: MeView['permissions'] = {};
  for (const p of PERMISSIONS) {
    const where = projectsWith(principal, p);
    if (where === 'all' || where.length > 0) {
      permissions[p] = where;
    }
  }
  return {
    user_id: principal.userId,
    username: principal.username,
    auth_method: principal.authMethod,
    api_key: principal.keyPrefix ?? null,
    bindings: principal.bindings.map((b) => ({
      role: b.role,
      project: b.projectId ?? '*',
      restrictions: b.restrictions,
      permissions: PERMISSIONS.filter((p) => ROLE_PERMISSIONS[b.role].has(p)),
    })),
    permissions,
  };
}
