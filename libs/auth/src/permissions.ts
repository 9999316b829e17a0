/**
 * Fine-grained permissions, like Proxmox 9's guest-agent privileges. A role is a set of them;
 * a binding grants a role globally or on one project.
 */
export const PERMISSIONS = [
  'vm.read',
  'guest.exec',
  'guest.file.read',
  'guest.file.write',
  'guest.power',
  'guest.quiesce',
  'guest.time',
  'guest.password',
  'audit.read',
  'admin',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const ROLES = ['admin', 'operator', 'viewer', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

const GUEST_OPERATIONS: Permission[] = PERMISSIONS.filter((p) => p.startsWith('guest.'));

/** What each role may do. `admin` holds every permission. */
export const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set(PERMISSIONS),
  operator: new Set<Permission>(['vm.read', ...GUEST_OPERATIONS]),
  viewer: new Set<Permission>(['vm.read']),
  // Reads the audit trail and command history everywhere; runs nothing.
  auditor: new Set<Permission>(['vm.read', 'audit.read']),
};

export function isPermission(s: string): s is Permission {
  return (PERMISSIONS as readonly string[]).includes(s);
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/**
 * Limits a binding adds on top of its role. `exec_non_root`: commands must name a non-root
 * `run_as_user`. `exec_users`: when set, the only users commands may run as.
 */
export interface BindingRestrictions {
  exec_non_root?: boolean;
  exec_users?: string[];
}

export function parseRestrictions(value: unknown): BindingRestrictions {
  if (value === undefined || value === null) {
    return {};
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('restrictions must be an object');
  }
  const out: BindingRestrictions = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'exec_non_root') {
      if (typeof v !== 'boolean') {
        throw new Error('restrictions.exec_non_root must be true or false');
      }
      out.exec_non_root = v;
    } else if (k === 'exec_users') {
      if (
        !Array.isArray(v) ||
        v.some((u) => typeof u !== 'string' || !/^[a-z_][a-z0-9_.-]{0,31}$/i.test(u))
      ) {
        throw new Error('restrictions.exec_users must be a list of user names');
      }
      out.exec_users = v as string[];
    } else {
      throw new Error(`restrictions.${k} is not a known restriction (exec_non_root, exec_users)`);
    }
  }
  return out;
}
