import type { KeyObject } from 'node:crypto';
import { GENESIS_HASH, chainHash, type ChainedContent } from '../hash-chain.js';
import { checkpointProblem, type AuditCheckpoint } from './checkpoint.js';

/** One audit row with its stored hashes, as the verifier reads it (table or export file). */
export interface StoredRow extends ChainedContent {
  prev_hash: Buffer;
  hash: Buffer;
}

/** The latest checkpoint the chain was compared with, and where it came from. */
export interface CheckpointRef {
  seq: number;
  at: string;
  key_id: string;
  source: string;
}

/** What a verification found (the chain part of GET /api/audit/verify and lqctl audit verify). */
export interface ChainReport {
  ok: boolean;
  rows: number;
  last_seq: number | null;
  /** The first row missing, changed or no longer matching a signed checkpoint. */
  first_broken?: { seq: number; reason: string };
  /** The latest trusted checkpoint; null when there was none to compare with. */
  checkpoint: CheckpointRef | null;
  /** Checkpoints whose signature checked out and whose row was compared. */
  checkpoints_checked: number;
  /** Checkpoints signed with a key not given (not trusted, not counted as tampering). */
  checkpoints_unknown_key: number;
  /** Checkpoints with a bad signature: forged or altered (at most 100 are named). */
  checkpoint_problems?: string[];
}

const MAX_PROBLEMS = 100;

/** Exactly the chained columns of a row (whatever else the object carries). */
export function chainedContentOf(r: ChainedContent): ChainedContent {
  return {
    seq: r.seq,
    at: r.at,
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
    stdout_bytes: r.stdout_bytes,
    stderr_sha256: r.stderr_sha256,
    stderr_bytes: r.stderr_bytes,
  };
}

/**
 * Recomputes the chain row by row, in seq order, with bounded memory: each row's hash over its
 * content and the previous hash, the link to the previous row, gapless sequence numbers, and at
 * every signed checkpoint that the chain reaches the signed hash. At the end the table must
 * reach the latest checkpoint: rows deleted from the end, or a chain rebuilt from genesis, do
 * not.
 *
 * Feed it checkpoints (addCheckpoint) before the rows they cover, rows in seq order (push),
 * then finish().
 */
export class ChainVerifier {
  private prev: Buffer;
  private expectedSeq: number;
  private rows = 0;
  private lastSeq: number | null = null;
  private firstBroken: ChainReport['first_broken'];
  /** Trusted checkpoints not yet reached, ascending by seq (one per seq). */
  private pending: AuditCheckpoint[] = [];
  private latest: (AuditCheckpoint & { source: string }) | undefined;
  /** The last checkpoint the chain matched: rows before it are as signed. */
  private lastMatched = 0;
  private checked = 0;
  private unknownKey = 0;
  private problems: string[] = [];
  private problemCount = 0;

  constructor(
    private readonly keys: ReadonlyMap<string, KeyObject>,
    /** Where the rows start: after genesis, or after a row already verified (its seq and hash). */
    start: { seq: number; hash: Buffer } = { seq: 0, hash: GENESIS_HASH },
  ) {
    this.prev = start.hash;
    this.expectedSeq = start.seq + 1;
    this.lastMatched = start.seq;
  }

  /**
   * A checkpoint (from the table, a stream or a file). Its signature is checked; a trusted one
   * is compared with its row when the rows reach it. Checkpoints may come in any order but must
   * come before the row they name is pushed (those already passed are compared at once).
   */
  addCheckpoint(c: AuditCheckpoint, source: string): void {
    const problem = checkpointProblem(c, this.keys);
    if (problem === 'unknown key') {
      this.unknownKey++;
      return;
    }
    if (problem) {
      this.problemCount++;
      if (this.problems.length < MAX_PROBLEMS) {
        this.problems.push(`checkpoint of row ${c.seq} (${source}, ${c.at}): ${problem}`);
      }
      return;
    }
    if (!this.latest || c.seq > this.latest.seq) {
      this.latest = { ...c, source };
    }
    if (this.lastSeq !== null && c.seq <= this.lastSeq) {
      return; // already passed: a late copy of one compared (or a gap the seq check named)
    }
    const last = this.pending.at(-1);
    const i = !last || last.seq < c.seq ? -1 : this.pending.findIndex((p) => p.seq >= c.seq);
    if (i === -1) {
      this.pending.push(c);
    } else if (this.pending[i]!.seq === c.seq) {
      // Two checkpoints of one row (a replica each, or table and stream): both must match.
      if (this.pending[i]!.hash !== c.hash) {
        this.breakAt(c.seq, `two signed checkpoints of row ${c.seq} disagree`);
      }
    } else {
      this.pending.splice(i, 0, c);
    }
  }

  /** The next row, in seq order. */
  push(r: StoredRow): void {
    const seq = r.seq;
    this.rows++;
    this.lastSeq = seq;
    if (!this.firstBroken) {
      if (seq !== this.expectedSeq) {
        this.breakAt(
          this.expectedSeq,
          `sequence gap: row ${this.expectedSeq}${seq - 1 > this.expectedSeq ? `..${seq - 1}` : ''} is missing`,
        );
      } else if (!r.prev_hash.equals(this.prev)) {
        this.breakAt(seq, 'link broken: prev_hash is not the previous row’s hash');
      } else if (!chainHash(this.prev, r).equals(r.hash)) {
        this.breakAt(seq, 'content changed: hash does not match the row');
      }
    }
    this.prev = r.hash;
    this.expectedSeq = seq + 1;
    while (this.pending.length > 0 && this.pending[0]!.seq <= seq) {
      const c = this.pending.shift()!;
      if (c.seq < seq) {
        continue; // its row is missing: the sequence gap is named
      }
      this.checked++;
      if (c.hash !== r.hash.toString('hex')) {
        this.breakAt(
          this.lastMatched + 1,
          `rows ${this.lastMatched + 1}..${seq} were altered: row ${seq} does not match the checkpoint signed at ${c.at}`,
        );
      } else if (!this.firstBroken) {
        this.lastMatched = seq;
      }
    }
  }

  finish(): ChainReport {
    const latest = this.latest;
    if (latest && (this.lastSeq ?? 0) < latest.seq) {
      const from = (this.lastSeq ?? 0) + 1;
      this.breakAt(
        from,
        `rows ${from}..${latest.seq} are missing: the checkpoint signed at ${latest.at} covers row ${latest.seq}, the chain ends at ${this.lastSeq ?? 'no row'}`,
      );
    }
    return {
      ok: !this.firstBroken && this.problemCount === 0,
      rows: this.rows,
      last_seq: this.lastSeq,
      ...(this.firstBroken ? { first_broken: this.firstBroken } : {}),
      checkpoint: latest
        ? { seq: latest.seq, at: latest.at, key_id: latest.key_id, source: latest.source }
        : null,
      checkpoints_checked: this.checked,
      checkpoints_unknown_key: this.unknownKey,
      ...(this.problems.length ? { checkpoint_problems: this.problems } : {}),
    };
  }

  private breakAt(seq: number, reason: string): void {
    if (!this.firstBroken) {
      this.firstBroken = { seq, reason };
    }
  }
}
