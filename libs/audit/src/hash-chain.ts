import { createHash } from 'node:crypto';

/** The hash before the first row. */
export const GENESIS_HASH = Buffer.alloc(32);

/** One audit row's chained content: every column but the hashes. */
export interface ChainedContent {
  seq: number;
  at: string;
  kind: string;
  request_id: string;
  actor: string;
  auth_method: string;
  source_ip: string;
  vm_id: string | null;
  node_id: string | null;
  project_id: string | null;
  operation: string;
  params: unknown;
  status: string | null;
  exit_code: number | null;
  duration_ms: number | null;
  error: string | null;
  stdout_sha256: string | null;
  stdout_bytes: number | null;
  stderr_sha256: string | null;
  stderr_bytes: number | null;
}

/**
 * JSON with object keys sorted at every level and no whitespace: the same bytes for the same
 * content whatever order PostgreSQL's jsonb gives the keys back in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      return 'null';
    }
    return JSON.stringify(value ?? null);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      out += `${i > 0 ? ',' : ''}${canonicalJson(value[i])}`;
    }
    return `${out}]`;
  }
  return canonicalObject(value as Record<string, unknown>);
}

/**
 * canonicalJson of an object, without `skip` at its top level. Keys sorted as strings are
 * (UTF-16 code units, what `<` compares); written in one pass (this runs for every audit row
 * written or verified, and for every intent's digest).
 */
function canonicalObject(obj: Record<string, unknown>, skip?: string): string {
  const keys = Object.keys(obj).sort();
  let out = '{';
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || k === skip) {
      continue;
    }
    out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** The chained columns in canonicalJson's key order (UTF-16 code unit order). */
const CHAINED_KEYS = [
  'actor',
  'at',
  'auth_method',
  'duration_ms',
  'error',
  'exit_code',
  'kind',
  'node_id',
  'operation',
  'params',
  'project_id',
  'request_id',
  'seq',
  'source_ip',
  'status',
  'stderr_bytes',
  'stderr_sha256',
  'stdout_bytes',
  'stdout_sha256',
  'vm_id',
] as const satisfies ReadonlyArray<keyof ChainedContent>;
// Every chained column is in the list: a column added to ChainedContent and not here would be
// left out of the hash. This fails to compile then.
const EVERY_COLUMN_CHAINED: Exclude<
  keyof ChainedContent,
  (typeof CHAINED_KEYS)[number]
> extends never
  ? true
  : never = true;
void EVERY_COLUMN_CHAINED;

/**
 * canonicalJson of a row's chained columns (and of nothing else the object carries), written
 * straight from the fixed key order: the writer and every verification hash each row through
 * it, and sorting twenty keys into fresh arrays per row made verify of 10 M rows mostly garbage
 * collection. Same bytes as canonicalJson(chainedContentOf(c)) (hash-chain.spec.ts).
 */
export function chainedJson(c: ChainedContent): string {
  let out = '{';
  for (const k of CHAINED_KEYS) {
    const v: unknown = c[k];
    if (v === undefined) {
      continue;
    }
    out += `${out.length > 1 ? ',' : ''}"${k}":${typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v)}`;
  }
  return `${out}}`;
}

/** sha256(previous hash ‖ canonical content of the chained columns). */
export function chainHash(prev: Uint8Array, content: ChainedContent): Buffer {
  return createHash('sha256').update(prev).update(chainedJson(content), 'utf8').digest();
}

/** The columns of an intent row its digest covers (every column chosen before it is written). */
export interface IntentContent {
  request_id: string;
  actor: string;
  auth_method: string;
  source_ip: string;
  vm_id: string | null;
  node_id: string | null;
  project_id: string | null;
  operation: string;
  /** The row's params without `authorization` (which holds the signature over this digest). */
  params: unknown;
}

/**
 * sha256 (hex) of an intent's content, computed before the row is written: the control plane
 * signs it into the intent's authorization (kept in params.authorization) and into every request
 * sent on the intent's behalf, so an auditor can tie each guest action to its intent row.
 */
export function intentDigest(content: IntentContent): string {
  // canonicalJson({ ...content, params: params without `authorization` ?? null }), written
  // without the copies.
  const c = content as unknown as Record<string, unknown>;
  const { params } = content;
  const keys = Object.keys(c);
  if (!('params' in c)) {
    keys.push('params');
  }
  keys.sort();
  let out = '{';
  for (const k of keys) {
    let json: string;
    if (k === 'params') {
      json =
        params && typeof params === 'object' && !Array.isArray(params)
          ? canonicalObject(params as Record<string, unknown>, 'authorization')
          : canonicalJson(params ?? null);
    } else {
      const v = c[k];
      if (v === undefined) {
        continue;
      }
      json = canonicalJson(v);
    }
    out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${json}`;
  }
  return createHash('sha256').update(`${out}}`, 'utf8').digest('hex');
}
