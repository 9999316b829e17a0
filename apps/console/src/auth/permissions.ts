import type { MeView, Permission } from '@lq/api';

// Everything here reads GET /api/auth/me: where the caller holds each permission, and what each
// of its bindings grants. The server owns the roles; the console keeps no copy of them.

export type { Permission };

/**
 * Whether the signed-in user holds `permission` on `project` (or, without a project, on any
 * project). The server decides in the end; the console only hides what would be refused.
 */
export function can(me: MeView | undefined, permission: Permission, project?: string): boolean {
  const where = me?.permissions[permission];
  if (where === undefined) {
    return false;
  }
  if (where === 'all') {
    return true;
  }
  return project === undefined ? where.length > 0 : where.includes(project);
}

/** Holds `permission` on every project (e.g. verifying the audit chain, which spans them all). */
export function canEverywhere(me: MeView | undefined, permission: Permission): boolean {
  return me?.permissions[permission] === 'all';
}

export interface ExecLimits {
  /** Commands must name a non-root run-as user. */
  nonRootOnly: boolean;
  /** When set, the only users commands may run as. */
  users?: string[];
}

/**
 * The narrowest limits among the bindings that let the user run commands on `project`: any
 * unrestricted binding lifts them (the server accepts a command one binding allows).
 */
export function execLimits(me: MeView | undefined, project: string): ExecLimits {
  const granting = (me?.bindings ?? []).filter(
    (b) => (b.project === '*' || b.project === project) && b.permissions.includes('guest.exec'),
  );
  if (
    granting.length === 0 ||
    granting.some((b) => !b.restrictions?.exec_non_root && !b.restrictions?.exec_users)
  ) {
    return { nonRootOnly: false };
  }
  const users = granting.every((b) => b.restrictions.exec_users)
    ? [...new Set(granting.flatMap((b) => b.restrictions.exec_users ?? []))]
    : undefined;
  return { nonRootOnly: granting.every((b) => b.restrictions.exec_non_root === true), users };
}

/** The roles a user holds, for the header ("operator on payments"). */
export function rolesLabel(me: MeView): string {
  return me.bindings
    .map((b) => (b.project === '*' ? b.role : `${b.role} on ${b.project}`))
    .join(', ');
}
