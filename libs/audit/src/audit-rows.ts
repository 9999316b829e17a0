// audit_events rows as pg returns them, as chained content, as the auditors' view; and the
// digest of an intent as it will be stored.
import { chainHash, GENESIS_HASH, intentDigest, type ChainedContent } from './hash-chain.js';
import { pgSafe, storableJson } from './redaction.js';
import type { AuditEventView, AuditRecord } from './audit-record.js';

export const EVENT_COLUMNS = `seq, at, kind, request_id, actor, auth_method, source_ip, vm_id, node_id,
  project_id, operation, params, status, exit_code, duration_ms, error, stdout_sha256,
  stdout_bytes, stderr_sha256, stderr_bytes`;

/** A row as pg returns it: bigints as strings, the time as a Date. */
export type EventRow = Omit<ChainedContent, 'seq' | 'at' | 'stdout_bytes' | 'stderr_bytes'> & {
  seq: string;
  at: Date;
  stdout_bytes: string | null;
  stderr_bytes: string | null;
  prev_hash?: Buffer;
  hash?: Buffer;
};

export type ExecutionRow = EventRow & {
  started_at: Date;
  ended_at: Date | null;
  outcome_params: Record<string, unknown> | null;
  stdout: Buffer | null;
  stderr: Buffer | null;
  stdout_truncated: boolean | null;
  stderr_truncated: boolean | null;
};

export interface OutputCheckRow {
  request_id: string;
  stdout: Buffer;
  stderr: Buffer;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  stdout_sha256: string | null;
  stderr_sha256: string | null;
}

export const numOrNull = (v: string | number | null): number | null =>
  v === null ? null : Number(v);

export function contentOf(r: EventRow): ChainedContent {
  return {
    seq: Number(r.seq),
    at: r.at.toISOString(),
    kind: r.kind,
    request_id: r.request_id,
    actor: r.actor,
    auth_method: r.auth_method,
    source_ip: r.source_ip,
    vm_id: r.vm_id,
    node_id: r.node_id,
    project_id: r.project_id,
    operation: r.operation,
    params: r.params,
    status: r.status,
    exit_code: r.exit_code,
    duration_ms: r.duration_ms,
    error: r.error,
    stdout_sha256: r.stdout_sha256,
    stdout_bytes: numOrNull(r.stdout_bytes),
    stderr_sha256: r.stderr_sha256,
    stderr_bytes: numOrNull(r.stderr_bytes),
  };
}

export function toView(r: EventRow): AuditEventView {
  return { ...contentOf(r), kind: r.kind as AuditEventView['kind'] };
}

export function contentOfRecord(r: AuditRecord, seq: number, at: string): ChainedContent {
  return {
    seq,
    at,
    kind: r.kind,
    request_id: r.requestId,
    actor: pgSafe(r.actor),
    auth_method: pgSafe(r.authMethod),
    source_ip: pgSafe(r.sourceIp),
    vm_id: r.vmId === undefined ? null : pgSafe(r.vmId),
    node_id: r.nodeId === undefined ? null : pgSafe(r.nodeId),
    project_id: r.projectId === undefined ? null : pgSafe(r.projectId),
    operation: pgSafe(r.operation),
    params: storableJson(r.params ?? {}),
    status: r.status === undefined ? null : pgSafe(r.status),
    exit_code: r.exitCode ?? null,
    duration_ms: r.durationMs === undefined ? null : Math.round(r.durationMs),
    // pgSafe after the cut: a cut through a surrogate pair leaves half of it.
    error: r.error === undefined ? null : pgSafe(r.error.slice(0, 4096)),
    stdout_sha256: r.stdout?.sha256 ?? null,
    stdout_bytes: r.stdout?.bytes ?? null,
    stderr_sha256: r.stderr?.sha256 ?? null,
    stderr_bytes: r.stderr?.bytes ?? null,
  };
}

export interface ChainHead {
  seq: number;
  hash: Buffer;
  /** Epoch ms of the head row: later rows never go back in time. */
  at: number;
}

export const GENESIS_HEAD: ChainHead = { seq: 0, hash: GENESIS_HASH, at: 0 };

/** The rows to insert, chained onto `head`, and the head they leave. */
export function chainRows(records: AuditRecord[], head: ChainHead, now: Date) {
  let seq = head.seq;
  let prev = head.hash;
  const atMs = Math.max(now.getTime(), head.at);
  const at = new Date(atMs).toISOString();
  const events = records.map((r) => {
    const content = contentOfRecord(r, ++seq, at);
    const hash = chainHash(prev, content);
    // The content is this row's own object: add the hashes to it rather than copy it.
    const row = Object.assign(content, {
      prev_hash: prev.toString('hex'),
      hash: hash.toString('hex'),
    });
    prev = hash;
    return row;
  });
  const outputs = records
    .filter((r) => r.output)
    .map((r) => ({
      request_id: r.requestId,
      stdout: Buffer.from(r.output!.stdout).toString('base64'),
      stderr: Buffer.from(r.output!.stderr).toString('base64'),
      stdout_truncated: r.output!.stdoutTruncated,
      stderr_truncated: r.output!.stderrTruncated,
    }));
  return { events, outputs, last: { seq, hash: prev, at: atMs } };
}

/**
 * The digest of an intent as it will be stored (the same text clean-up as the row), for the
 * control plane to sign before it writes the row; auditors recompute it with intentDigest().
 */
export function intentDigestOfRecord(r: Omit<AuditRecord, 'kind'>): string {
  const c = contentOfRecord({ ...r, kind: 'intent' }, 0, '');
  return intentDigest({
    request_id: c.request_id,
    actor: c.actor,
    auth_method: c.auth_method,
    source_ip: c.source_ip,
    vm_id: c.vm_id,
    node_id: c.node_id,
    project_id: c.project_id,
    operation: c.operation,
    params: c.params,
  });
}
