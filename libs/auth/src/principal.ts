import {
  ROLE_PERMISSIONS,
  type BindingRestrictions,
  type Permission,
  type Role,
} from './permissions.js';

export type AuthMethod = 'jwt' | 'api_key';

export interface Binding {
  role: Role;
  /** null: every project. */
  projectId: string | null;
  restrictions: BindingRestrictions;
}

/** An authenticated caller and what it is bound to. */
export interface Principal {
  userId: string;
  username: string;
  authMethod: AuthMethod;
  /** The API key's id, with api_key. */
  keyId?: string;
  /** The API key's public prefix (what the audit trail names). */
  keyPrefix?: string;
  bindings: Binding[];
}

/** The bindings that grant `permission` on `projectId` (global ones included). */
export function grantsOn(p: Principal, permission: Permission, projectId: string): Binding[] {
  return p.bindings.filter(
    (b) =>
      (b.projectId === null || b.projectId === projectId) &&
      ROLE_PERMISSIONS[b.role].has(permission),
  );
}

/** Whether any binding grants `permission` somewhere (the route-level check). */
export function holdsAnywhere(p: Principal, permission: Permission): boolean {
  return p.bindings.some((b) => ROLE_PERMISSIONS[b.role].has(permission));
}

/** Whether `permission` is granted on every project (a global binding). */
export function holdsGlobally(p: Principal, permission: Permission): boolean {
  return p.bindings.some((b) => b.projectId === null && ROLE_PERMISSIONS[b.role].has(permission));
}

/** Projects where `permission` is granted; 'all' with a global binding. */
export function projectsWith(p: Principal, permission: Permission): 'all' | string[] {
  if (holdsGlobally(p, permission)) {
    return 'all';
  }
  return [
    ...new Set(
      p.bindings
        .filter((b) => b.projectId !== null && ROLE_PERMISSIONS[b.role].has(permission))
        .map((b) => b.projectId as string),
    ),
  ];
}

/**
 * Why a command may not run as `runAsUser` under the granting bindings, or undefined when one
 * of them allows it (the least restricted binding wins).
 */
export function execRestrictionViolation(grants: Binding[], runAsUser: string): string | undefined {
  let reason: string | undefined;
  for (const b of grants) {
    const r = b.restrictions;
    const user = runAsUser.trim();
    if (r.exec_non_root && (user === '' || user === 'root' || user === '0')) {
      reason = 'this binding only allows commands run as a non-root run_as_user';
      continue;
    }
    if (r.exec_users && !r.exec_users.includes(user)) {
      reason = `this binding only allows run_as_user in [${r.exec_users.join(', ')}]`;
      continue;
    }
    return undefined;
  }
  return reason ?? 'no binding grants guest.exec here';
}
