import { ErrorCode, type FileLimits } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import { PathPolicy } from './path-policy.js';

const SETID_BITS = 0o6000;

function notAllowed(message: string): AgentOpError {
  return new AgentOpError(ErrorCode.NOT_ALLOWED, message);
}

/**
 * A caller's FileLimits (PROTOCOL.md §6 Files): its roots narrow the agent's files.roots with
 * the same symlink rules, and `no_setid` keeps set-user-ID and set-group-ID bits and owners out
 * of what it writes. The path policies of the roots callers bring are kept (a few per binding).
 */
export class FileLimitPolicies {
  private readonly policies = new Map<string, PathPolicy>();

  constructor(
    private readonly max = 64,
    /** The agent's own policy: narrower ones follow its OS's rules (Linux by default). */
    private readonly base?: PathPolicy,
  ) {}

  /** The narrowing policy for `limits`, or undefined when its roots narrow nothing. */
  policyOf(limits: FileLimits | undefined): PathPolicy | undefined {
    if (!limits || limits.roots.length === 0) {
      return undefined;
    }
    const key = JSON.stringify([...limits.roots].sort());
    let policy = this.policies.get(key);
    if (!policy) {
      if (this.policies.size >= this.max) {
        this.policies.clear();
      }
      policy = this.base?.narrowed(limits.roots) ?? new PathPolicy(limits.roots);
      this.policies.set(key, policy);
    }
    return policy;
  }
}

/** A write's mode and owner against `no_setid`: NOT_ALLOWED before anything is touched. */
export function checkWriteLimits(
  limits: FileLimits | undefined,
  request: { mode?: number; uid?: number; gid?: number },
): void {
  if (!limits?.noSetid) {
    return;
  }
  if (request.mode !== undefined && (request.mode & SETID_BITS) !== 0) {
    throw notAllowed(
      `mode ${request.mode.toString(8)} sets a set-user-ID or set-group-ID bit, which the caller may not`,
    );
  }
  if (request.uid !== undefined || request.gid !== undefined) {
    throw notAllowed('the caller may not set a file’s owner (uid, gid)');
  }
}

/** The permission bits to leave on a file written under `limits`. */
export function allowedMode(limits: FileLimits | undefined, mode: number): number {
  return limits?.noSetid ? mode & 0o7777 & ~SETID_BITS : mode & 0o7777;
}
