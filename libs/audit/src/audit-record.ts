import type {
  AuditEventView as ApiAuditEventView,
  AuditExecutionView,
  AuditKind as ApiAuditKind,
  VerifyReport,
} from '@lq/api';

/** intent before a guest operation is sent, outcome after; denials, failed sign-ins, admin acts. */
export const AUDIT_KINDS = [
  'intent',
  'outcome',
  'denied',
  'auth_failed',
  'admin',
] as const satisfies readonly ApiAuditKind[];
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

/** A stored row as the API returns it (GET /api/audit/events). */
export type AuditEventView = ApiAuditEventView;

/** One execution of the command history: its intent, outcome and stored output together. */
export type ExecutionView = AuditExecutionView;

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

export type { VerifyReport };
