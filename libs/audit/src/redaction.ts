import { createHash } from 'node:crypto';

export const REDACTED = '[redacted]';

// Keys whose values are secrets wherever they appear in parameters, and environment variables
// whose names say they hold one. Callers mark others secret explicitly (secret_env).
const SECRET_KEY = /pass(word|wd|phrase)?$|^password|secret|token|credential|crypted|private_?key/i;
const SECRET_ENV = /PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY/i;

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** PostgreSQL text cannot hold NUL; an audit row must never fail on a caller's bytes. */
export function pgSafe(s: string): string {
  return s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s;
}

function redactValue(key: string, value: unknown): unknown {
  if (SECRET_KEY.test(key)) {
    return REDACTED;
  }
  if (typeof value === 'string') {
    return pgSafe(value);
  }
  if (Array.isArray(value)) {
    return value.map((v) => redactValue('', v));
  }
  if (value instanceof Uint8Array) {
    return { sha256: sha256Hex(value), bytes: value.length };
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redactValue(k, v)]),
    );
  }
  return value;
}

export interface ExecuteParams {
  command?: string;
  argv?: string[];
  env?: Record<string, string>;
  secretEnv?: string[];
  stdin?: Uint8Array;
  cwd?: string;
  timeoutSeconds?: number;
  runAsUser?: string;
  runAsGroup?: string;
  includeSupplementaryGroups?: boolean;
}

/**
 * An operation's parameters as the audit trail keeps them: secrets replaced (fields named like
 * passwords, env values marked secret or named like secrets), byte content as its sha256 and
 * size (stdin, file data), never the content itself.
 */
export function redactParams(params: Record<string, unknown>): Record<string, unknown> {
  return redactValue('', params) as Record<string, unknown>;
}

export function redactExecute(p: ExecuteParams): Record<string, unknown> {
  const secret = new Set(p.secretEnv ?? []);
  const env = Object.fromEntries(
    Object.entries(p.env ?? {}).map(([k, v]) => [
      k,
      secret.has(k) || SECRET_ENV.test(k) ? REDACTED : pgSafe(v),
    ]),
  );
  return redactParams({
    command: p.command || undefined,
    argv: p.argv && p.argv.length > 0 ? p.argv : undefined,
    env: Object.keys(env).length > 0 ? env : undefined,
    cwd: p.cwd || undefined,
    stdin: p.stdin && p.stdin.length > 0 ? p.stdin : undefined,
    timeout_seconds: p.timeoutSeconds,
    run_as_user: p.runAsUser || undefined,
    run_as_group: p.runAsGroup || undefined,
    include_supplementary_groups: p.includeSupplementaryGroups || undefined,
  });
}
