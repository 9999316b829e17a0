import { createHash } from 'node:crypto';

export const REDACTED = '[redacted]';

// Keys whose values are secrets wherever they appear in parameters.
const SECRET_KEY = /pass(word|wd|phrase)?$|^password|secret|token|credential|crypted|private_?key/i;

// What PostgreSQL cannot store in text or jsonb: NUL, and UTF-16 surrogates without their pair
// (JSON.stringify writes them as "\ud800" escapes, which jsonb refuses).
// eslint-disable-next-line no-control-regex -- NUL is exactly what is looked for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Text PostgreSQL can store: NUL and unpaired surrogates become U+FFFD. Rows that must be
 * written whatever a caller sent (outcomes, denials, failed sign-ins) go through this; an
 * intent whose parameters need it is refused instead (firstUnstorable).
 */
export function pgSafe(s: string): string {
  return UNSTORABLE.test(s) ? s.replace(UNSTORABLE_ALL, '\uFFFD') : s;
}

/**
 * Where a value holds text PostgreSQL would refuse (NUL, an unpaired surrogate), in a string or
 * an object key: a path like `params.env["A\u0000"]`; undefined when it is all storable.
 */
export function firstUnstorable(value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') {
    return UNSTORABLE.test(value) ? path || 'value' : undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = firstUnstorable(value[i], `${path}[${i}]`);
      if (found) {
        return found;
      }
    }
    return undefined;
  }
  if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const at = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k)
        ? `${path}${path ? '.' : ''}${k}`
        : `${path}[${JSON.stringify(k)}]`;
      if (UNSTORABLE.test(k)) {
        return `${at} (its name)`;
      }
      const found = firstUnstorable(v, at);
      if (found) {
        return found;
      }
    }
  }
  return undefined;
}

/**
 * A row's parameters as stored: every string and key made storable (pgSafe), and bytes, which
 * are never kept, as their sha256 and size (a file's data slipped into params by mistake
 * costs its digest, not its secret).
 */
export function storableJson(value: unknown): unknown {
  if (typeof value === 'string') {
    return pgSafe(value);
  }
  if (value instanceof Uint8Array) {
    return { sha256: sha256Hex(value), bytes: value.length };
  }
  if (Array.isArray(value)) {
    return value.map(storableJson);
  }
  if (value && typeof value === 'object') {
    // A loop, not entries → map → fromEntries: every audit row's params pass through here.
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const v = storableJson((value as Record<string, unknown>)[k]);
      if (k === '__proto__') {
        // A key a parsed body may hold: kept as data, as fromEntries would, not as a prototype.
        Object.defineProperty(out, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        out[pgSafe(k)] = v;
      }
    }
    return out;
  }
  return value;
}

function redactValue(key: string, value: unknown): unknown {
  if (SECRET_KEY.test(key)) {
    return REDACTED;
  }
  if (typeof value === 'string') {
    return value;
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
 * passwords), byte content as its sha256 and size (stdin, file data), never the content itself.
 */
export function redactParams(params: Record<string, unknown>): Record<string, unknown> {
  return redactValue('', params) as Record<string, unknown>;
}

/**
 * An execution's parameters as the audit trail keeps them: the command, its arguments and
 * run-as identity; of the environment only the names (every value redacted: whether a value is
 * a secret cannot be told from its name); stdin as its sha256 and size.
 */
export function redactExecute(p: ExecuteParams): Record<string, unknown> {
  const env = Object.fromEntries(Object.keys(p.env ?? {}).map((k) => [k, REDACTED]));
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
