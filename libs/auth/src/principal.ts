import {
  FILE_OPERATIONS,
  ROLE_PERMISSIONS,
  ROOT_OPERATIONS,
  isRestricted,
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

/** One identity a caller may act as in the guest (all conditions set must hold). */
export interface RunAsRule {
  /** uid, gid and every group are not 0. */
  nonRoot: boolean;
  /** When set: the resolved user's name is one of these. */
  users?: string[];
}

/**
 * What a caller may do with one guest permission on one project, from the bindings that grant
 * it there. The agent enforces `runAs` and `filePaths` on what it resolves; the control plane
 * sends them with the request.
 */
export interface GuestGrant {
  /** undefined: any identity; otherwise at least one rule must hold. */
  runAs?: RunAsRule[];
  /** run_as_group may name any group (otherwise one of the user's own). */
  anyGroup: boolean;
  /** undefined: any path the agent allows; otherwise directories file operations stay under. */
  filePaths?: string[];
}

export type GuestGrantResult =
  { granted: true; grant: GuestGrant } | { granted: false; why: string };

/**
 * Whether `permission` is granted on `projectId`, and within which limits. A restricted binding
 * (exec_non_root / exec_users) grants file operations only under its file_paths and the root
 * operations (power, quiesce, time) only when allow_root_operations names them. With several
 * bindings the least restricted wins, limit by limit.
 */
export function guestGrant(
  p: Principal,
  permission: Permission,
  projectId: string,
): GuestGrantResult {
  const bindings = grantsOn(p, permission, projectId);
  if (bindings.length === 0) {
    return { granted: false, why: `not granted on project ${projectId}` };
  }
  let why = '';
  const rules: Array<RunAsRule | undefined> = [];
  const paths: Array<string[] | undefined> = [];
  for (const b of bindings) {
    const r = b.restrictions;
    const restricted = isRestricted(r);
    if (
      restricted &&
      (ROOT_OPERATIONS as readonly string[]).includes(permission) &&
      !(r.allow_root_operations as string[] | undefined)?.includes(permission)
    ) {
      why = `the binding limits whom commands run as, and its restrictions.allow_root_operations does not name ${permission}`;
      continue;
    }
    const filePaths = r.file_paths ?? (restricted ? [] : undefined);
    if (FILE_OPERATIONS.includes(permission) && filePaths?.length === 0) {
      why = 'the binding limits whom commands run as and names no restrictions.file_paths';
      continue;
    }
    rules.push(restricted ? { nonRoot: r.exec_non_root === true, users: r.exec_users } : undefined);
    paths.push(filePaths);
  }
  if (rules.length === 0) {
    return { granted: false, why };
  }
  const anyGroup = grantsOn(p, 'guest.exec.any_group', projectId).some(
    (b) => !isRestricted(b.restrictions),
  );
  const runAs = rules.includes(undefined) ? undefined : (rules as RunAsRule[]);
  const filePaths = paths.includes(undefined)
    ? undefined
    : [...new Set((paths as string[][]).flat())];
  return { granted: true, grant: { runAs, anyGroup, filePaths } };
}

/** "0", "00", "root", " root ", "": spellings that are (or default to) the superuser. */
function spellsRoot(user: string): boolean {
  const u = user.trim();
  return u === '' || u === 'root' || (/^\d+$/.test(u) && Number(u) === 0);
}

/**
 * Why `runAsUser` obviously breaks every rule, or undefined. A first, cheap check so the common
 * refusals are a 403 before anything is sent; the agent judges the identity it resolves, which
 * is what holds (a numeric uid, an NSS name).
 */
export function obviousRunAsViolation(rules: RunAsRule[], runAsUser: string): string | undefined {
  const reasons = rules.map((rule) => {
    if (rule.nonRoot && spellsRoot(runAsUser)) {
      return 'this binding only allows commands run as a non-root run_as_user';
    }
    const u = runAsUser.trim();
    if (rule.users && !/^\d+$/.test(u) && !rule.users.includes(runAsUser)) {
      return `this binding only allows run_as_user in [${rule.users.join(', ')}]`;
    }
    return undefined;
  });
  return reasons.every((r) => r !== undefined) ? reasons[0] : undefined;
}

/** Whether the principal administers every project (a global admin binding). */
export function isGlobalAdmin(p: Principal): boolean {
  return holdsGlobally(p, 'admin');
}
