import { PERMISSIONS, ROLES, type Permission, type Role } from '@lq/api';

// The names are part of the REST contract (GET /api/auth/me, a 403's `permission`): one list in
// @lq/api. What each role grants is decided here.
export { PERMISSIONS, ROLES, type Permission, type Role };

const GUEST_OPERATIONS: Permission[] = PERMISSIONS.filter(
  (p) => p.startsWith('guest.') && p !== 'guest.exec.any_group',
);

/**
 * Guest operations that act as root whoever asks; a binding restricted to some run-as users
 * keeps them only when its restrictions name them in allow_root_operations.
 */
export const ROOT_OPERATIONS = [
  'guest.power',
  'guest.quiesce',
  'guest.time',
  'guest.agent.update',
  'guest.network.configure',
] as const;
export type RootOperation = (typeof ROOT_OPERATIONS)[number];

/** File operations, held to a binding's file_paths. */
export const FILE_OPERATIONS: readonly Permission[] = ['guest.file.read', 'guest.file.write'];

/** What each role may do. `admin` holds every permission. */
export const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set(PERMISSIONS),
  operator: new Set<Permission>(['vm.read', ...GUEST_OPERATIONS]),
  viewer: new Set<Permission>(['vm.read']),
  // Reads the audit trail and command history everywhere; runs nothing. Stored output is
  // withheld: it may hold secrets the patterns did not catch.
  auditor: new Set<Permission>(['vm.read', 'audit.read']),
  // The auditor's, and the stored output of executions.
  output_auditor: new Set<Permission>(['vm.read', 'audit.read', 'audit.read_output']),
};

export function isPermission(s: string): s is Permission {
  return (PERMISSIONS as readonly string[]).includes(s);
}

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/**
 * Limits a binding adds on top of its role.
 * - `exec_non_root`: commands run as a user whose uid, gid and groups are not 0.
 * - `exec_users`: when set, the only users commands may run as.
 * Either makes the binding *restricted*: its file operations stay under `file_paths` (none
 * without it), passwords may be set only for users it may run as, and the root operations
 * (power, quiesce, time) need `allow_root_operations`.
 * - `file_paths`: absolute directories file reads and writes stay under (also on an otherwise
 *   unrestricted binding).
 * - `allow_root_operations`: which of the ROOT_OPERATIONS (power, quiesce, time, agent update,
 *   network) a restricted
 *   binding keeps.
 */
export interface BindingRestrictions {
  exec_non_root?: boolean;
  exec_users?: string[];
  file_paths?: string[];
  allow_root_operations?: RootOperation[];
}

const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;
const RESTRICTION_KEYS = 'exec_non_root, exec_users, file_paths, allow_root_operations';

/** An absolute, normalised directory: no "." or ".." segments, no "//", no trailing "/". */
function isCleanAbsolute(p: string): boolean {
  return (
    p.startsWith('/') &&
    p.length <= 4096 &&
    !p.includes('\0') &&
    (p === '/' ||
      (!p.endsWith('/') &&
        p
          .split('/')
          .slice(1)
          .every((s) => s !== '' && s !== '.' && s !== '..')))
  );
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
        v.length === 0 ||
        v.some((u) => typeof u !== 'string' || !USER_NAME.test(u))
      ) {
        throw new Error('restrictions.exec_users must be a non-empty list of user names');
      }
      out.exec_users = v as string[];
    } else if (k === 'file_paths') {
      if (
        !Array.isArray(v) ||
        v.length > 64 ||
        v.some((p) => typeof p !== 'string' || !isCleanAbsolute(p))
      ) {
        throw new Error(
          'restrictions.file_paths must be a list of up to 64 absolute, normalised directories',
        );
      }
      out.file_paths = v as string[];
    } else if (k === 'allow_root_operations') {
      if (
        !Array.isArray(v) ||
        v.some((o) => !(ROOT_OPERATIONS as readonly unknown[]).includes(o))
      ) {
        throw new Error(
          `restrictions.allow_root_operations must list some of ${ROOT_OPERATIONS.join(', ')}`,
        );
      }
      out.allow_root_operations = v as RootOperation[];
    } else {
      throw new Error(`restrictions.${k} is not a known restriction (${RESTRICTION_KEYS})`);
    }
  }
  return out;
}

/** Whether the binding limits whom commands run as (and so what else it may do as root). */
export function isRestricted(r: BindingRestrictions): boolean {
  return r.exec_non_root === true || r.exec_users !== undefined;
}
