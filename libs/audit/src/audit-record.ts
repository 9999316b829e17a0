import type { ChainedContent } from './hash-chain.js';

/** intent before a guest operation is sent, outcome after; denials, failed sign-ins, admin acts. */
export const AUDIT_KINDS = ['intent', 'outcome', 'denied', 'auth_failed', 'admin'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** Who asked and from where: the same on every row of one request. */
export interface AuditActor {
  /** Username; '' when authentication failed before one was known. */
  actor: string;
  /** jwt, api_key:<prefix>, or '' */
  authMethod: string;
  sourceIp: string;
  requestId: string;
}

export interface OutputDigest {
  sha256: string;
  bytes: number;
}

/** A row to append; the writer gives it its sequence number, time and hashes. */
export interface AuditRecord extends AuditActor {
  kind: AuditKind;
  operation: string;
  vmId?: string;
  nodeId?: string;
  projectId?: string;
  params?: Record<string, unknown>;
  status?: string;
  exitCode?: number;
  durationMs?: number;
  error?: string;
  stdout?: OutputDigest;
  stderr?: OutputDigest;
  /** Command history: the (capped) output kept beside the outcome row. */
  output?: StoredOutput;
}

export interface StoredOutput {
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

/** A stored row as the API returns it. */
export type AuditEventView = Omit<ChainedContent, 'kind'> & { kind: AuditKind };

/** One execution of the command history: its intent, outcome and stored output together. */
export interface ExecutionView {
  seq: number;
  request_id: string;
  started_at: string;
  ended_at: string | null;
  actor: string;
  auth_method: string;
  source_ip: string;
  vm_id: string | null;
  node_id: string | null;
  project_id: string | null;
  command: string | null;
  argv: string[] | null;
  run_as_user: string | null;
  run_as_group: string | null;
  params: unknown;
  /** ok, an error code, or null while running (or when the outcome was never recorded). */
  status: string | null;
  exit_code: number | null;
  duration_ms: number | null;
  error: string | null;
  stdout: string | null;
  stderr: string | null;
  stdout_truncated: boolean | null;
  stderr_truncated: boolean | null;
  stdout_sha256: string | null;
  stdout_bytes: number | null;
  stderr_sha256: string | null;
  stderr_bytes: number | null;
}

export interface AuditFilter {
  actor?: string;
  vmId?: string;
  projectId?: string;
  operation?: string;
  kind?: AuditKind;
  /** ok, or an error code; `error` matches every non-ok outcome. */
  outcome?: string;
  from?: Date;
  to?: Date;
  /** Rows with seq below this (the previous page's next_cursor). */
  beforeSeq?: number;
  /** Only rows of these projects (a caller without global audit.read); undefined: all. */
  projects?: string[];
  limit: number;
}

export interface VerifyReport {
  ok: boolean;
  rows: number;
  last_seq: number | null;
  /** The first row whose hash, link or sequence does not check out. */
  first_broken?: { seq: number; reason: string };
  /** Stored outputs whose sha256 no longer matches their outcome row. */
  output_mismatches?: string[];
  duration_ms: number;
}
