import { ErrorCode, type RunAsLimits } from '@lq/proto';
import { AgentOpError } from '../errors.js';

/** The identity a request resolved to, as the limits judge it. */
export interface JudgedIdentity {
  name: string;
  uid: number;
  gid: number;
  /** The supplementary groups the process will hold. */
  groups: number[];
}

function notAllowed(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.NOT_ALLOWED, message);
}

/**
 * Judges a resolved identity against the caller's RunAsLimits (PROTOCOL.md §6): every spelling
 * of a user has been resolved to its uid by now, so "00" and "root" are judged alike. `userGroups`
 * are the user's own groups (primary first) whatever the process will hold, for the group rule.
 * Throws NOT_ALLOWED naming the rule; returns when the identity passes or there are no limits.
 */
export function judgeRunAs(
  limits: RunAsLimits | undefined,
  who: JudgedIdentity,
  requestedGroup: string,
  userGroups: readonly number[],
  what = 'run as',
): void {
  if (limits === undefined) {
    return;
  }
  const label = `${who.name} (uid ${who.uid}, gid ${who.gid})`;
  if (requestedGroup !== '' && !limits.anyGroup && !userGroups.includes(who.gid)) {
    throw notAllowed(
      `run_as_group ${JSON.stringify(requestedGroup)} (gid ${who.gid}) is not a group of user ${who.name}; the caller may only use the user's own groups`,
    );
  }
  if (limits.rules.length === 0) {
    return;
  }
  const reasons: string[] = [];
  for (const rule of limits.rules) {
    if (rule.nonRoot && (who.uid === 0 || who.gid === 0 || who.groups.includes(0))) {
      reasons.push('only non-root identities (uid, gid and groups other than 0)');
      continue;
    }
    if (rule.users.length > 0 && !rule.users.includes(who.name)) {
      reasons.push(`only the users ${rule.users.join(', ')}`);
      continue;
    }
    return;
  }
  throw notAllowed(`cannot ${what} ${label}: the caller is limited to ${reasons.join(', or ')}`);
}
