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
    return `[${value.map(canonicalJson).join(',')}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** sha256(previous hash ‖ canonical content). */
export function chainHash(prev: Uint8Array, content: ChainedContent): Buffer {
  return createHash('sha256').update(prev).update(canonicalJson(content), 'utf8').digest();
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
  const { params } = content;
  const rest =
    params && typeof params === 'object' && !Array.isArray(params)
      ? Object.fromEntries(Object.entries(params).filter(([k]) => k !== 'authorization'))
      : params;
  return createHash('sha256')
    .update(canonicalJson({ ...content, params: rest ?? null }), 'utf8')
    .digest('hex');
}
