import { DataSource } from 'typeorm';
import { EVENT_COLUMNS, contentOf, type EventRow } from './audit-rows.js';
import type { AuditCheckpoint, StoredRow } from './offline/index.js';

interface CheckpointRow {
  seq: string;
  hash: Buffer;
  at: string;
  key_id: string;
  signature: string;
}

const EMPTY = Buffer.alloc(0);

const toCheckpoint = (r: CheckpointRow): AuditCheckpoint => ({
  seq: Number(r.seq),
  hash: r.hash.toString('hex'),
  at: r.at,
  key_id: r.key_id,
  signature: r.signature,
});

/** The signed checkpoints of the chain head (audit_checkpoints) and the rows they cover. */
export class CheckpointRepository {
  constructor(private readonly ds: DataSource) {}

  /** The chain's head row, or undefined for an empty table. */
  async head(): Promise<{ seq: number; hash: Buffer } | undefined> {
    const rows = await this.ds.query<Array<{ seq: string; hash: Buffer }>>(
      'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
    );
    return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash } : undefined;
  }

  /** Stores a checkpoint; a second one of the same row (another replica's) is kept out. */
  async insert(c: AuditCheckpoint): Promise<void> {
    await this.ds.query(
      `INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature)
       VALUES ($1, decode($2, 'hex'), $3, $4, $5) ON CONFLICT (seq) DO NOTHING`,
      [c.seq, c.hash, c.at, c.key_id, c.signature],
    );
  }

  async latest(): Promise<AuditCheckpoint | undefined> {
    const rows = await this.ds.query<CheckpointRow[]>(
      'SELECT seq, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1',
    );
    return rows[0] ? toCheckpoint(rows[0]) : undefined;
  }

  /** Checkpoints with from ≤ seq ≤ to, ascending, at most `limit`. */
  async between(from: number, to: number, limit: number): Promise<AuditCheckpoint[]> {
    const rows = await this.ds.query<CheckpointRow[]>(
      `SELECT seq, hash, at, key_id, signature FROM audit_checkpoints
       WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
      [from, to, limit],
    );
    return rows.map(toCheckpoint);
  }

  /** Up to `limit` rows from seq `from` on, ascending, with their stored hashes. */
  async rows(from: number, limit: number): Promise<StoredRow[]> {
    const rows = await this.ds.query<EventRow[]>(
      `SELECT ${EVENT_COLUMNS}, prev_hash, hash FROM audit_events
       WHERE seq >= $1 ORDER BY seq LIMIT $2`,
      [from, limit],
    );
    // One object per row (verify reads 10 M of them): the content with its hashes added.
    return rows.map((r) => {
      const row = contentOf(r) as StoredRow;
      row.prev_hash = r.prev_hash ?? EMPTY;
      row.hash = r.hash ?? EMPTY;
      return row;
    });
  }
}
