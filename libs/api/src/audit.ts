// The auditors' API: /api/audit/{events,executions,verify}.

export type AuditKind = 'intent' | 'outcome' | 'denied' | 'auth_failed' | 'admin';

/** One audit row (GET /api/audit/events), as chained: every column but the hashes. */
export interface AuditEventView {
  seq: number;
  at: string;
  kind: AuditKind;
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

/** One execution of the command history (GET /api/audit/executions): intent, outcome, output. */
export interface AuditExecutionView {
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
  /** The stored output (redacted); null when none, or withheld (`output_withheld`). */
  stdout: string | null;
  stderr: string | null;
  stdout_truncated: boolean | null;
  stderr_truncated: boolean | null;
  stdout_sha256: string | null;
  stdout_bytes: number | null;
  stderr_sha256: string | null;
  stderr_bytes: number | null;
  /**
   * Secrets replaced in the stored output (LQ_OUTPUT_REDACT_*): matches per stream and the
   * stored copies' sha256 (stdout_sha256 above is of the output as the caller got it); null
   * when nothing was redacted.
   */
  output_redaction: {
    redacted: true;
    stdout: number;
    stderr: number;
    stdout_sha256: string;
    stderr_sha256: string;
  } | null;
  /** The caller lacks audit.read_output on the execution's project: stdout and stderr are null. */
  output_withheld?: boolean;
}

/** GET /api/audit/events (JSON; ndjson and csv stream the same rows). */
export interface AuditEventsPage {
  events: AuditEventView[];
  /** Pass as `cursor` for the next (older) page; null on the last. */
  next_cursor: string | null;
}

/** GET /api/audit/executions */
export interface AuditExecutionsPage {
  executions: AuditExecutionView[];
  next_cursor: string | null;
}

/** GET /api/audit/verify */
export interface VerifyReport {
  ok: boolean;
  rows: number;
  last_seq: number | null;
  /**
   * The first row whose hash, link or sequence does not check out, that is missing after the
   * latest signed checkpoint, or from which the chain no longer reaches a signed checkpoint.
   */
  first_broken?: { seq: number; reason: string };
  /** Stored outputs whose sha256 no longer matches their outcome row. */
  output_mismatches?: string[];
  /**
   * The latest signed checkpoint of the chain head the table was compared with (from the
   * JetStream stream, else the checkpoint table); null when there is none yet.
   */
  checkpoint?: AuditCheckpointRef | null;
  /** Signed checkpoints whose row was compared. */
  checkpoints_checked?: number;
  /** Checkpoints signed by a key this control plane does not hold (ignored). */
  checkpoints_unknown_key?: number;
  /** Checkpoints with a bad signature (forged or altered). */
  checkpoint_problems?: string[];
  /** Why the stream's checkpoint was not used (e.g. JetStream unreachable), when it was not. */
  checkpoint_note?: string;
  duration_ms: number;
}

export interface AuditCheckpointRef {
  seq: number;
  at: string;
  key_id: string;
  /** jetstream or table */
  source: string;
}

/** GET /api/audit/public-key: the key audit checkpoints are signed with. */
export interface AuditPublicKey {
  key_id: string;
  /** Raw Ed25519 public key, base64: `lqctl audit verify FILE --public-key <this>`. */
  public_key: string;
  algorithm: 'Ed25519';
}
