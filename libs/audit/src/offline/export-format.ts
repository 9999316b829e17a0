import type { KeyObject } from 'node:crypto';
import type { ChainedContent } from '../hash-chain.js';
import { ChainVerifier, chainedContentOf, type ChainReport } from './chain-verifier.js';
import { parseCheckpoint, type AuditCheckpoint } from './checkpoint.js';

/**
 * The audit export that can be verified offline (GET /api/audit/export, `lqctl audit export`,
 * `lqctl audit verify FILE`): NDJSON, one object per line, in this order:
 *
 *   {"format":"lq-audit-export/1","exported_at":…,"public_keys":[{key_id,public_key,algorithm}]}
 *   {"type":"checkpoint","source":"table"|"jetstream",seq,hash,at,key_id,signature}   (0..n)
 *   {"type":"event",seq,at,kind,…every chained column…,"prev_hash":hex,"hash":hex}     (1..n, by seq)
 *   {"type":"end","rows":n,"checkpoints":m}
 *
 * The public keys in the header are informative only: the verifier is given the key it trusts.
 */
export const EXPORT_FORMAT = 'lq-audit-export/1';

export interface ExportHeader {
  format: typeof EXPORT_FORMAT;
  exported_at: string;
  public_keys: Array<{ key_id: string; public_key: string; algorithm: 'Ed25519' }>;
}

export type ExportCheckpointLine = AuditCheckpoint & { type: 'checkpoint'; source: string };
export type ExportEventLine = ChainedContent & { type: 'event'; prev_hash: string; hash: string };
export interface ExportEndLine {
  type: 'end';
  rows: number;
  checkpoints: number;
}

export interface ExportReport extends ChainReport {
  /** False when the file stops before its end line (a cut download or a cut file). */
  complete: boolean;
  exported_at: string | null;
}

/** A line of the export that cannot be read: names the line. */
export class ExportFormatError extends Error {
  override readonly name = 'ExportFormatError';
}

const HEX64 = /^[0-9a-f]{64}$/;

function eventOf(v: Record<string, unknown>, line: number) {
  for (const k of ['prev_hash', 'hash'] as const) {
    if (typeof v[k] !== 'string' || !HEX64.test(v[k])) {
      throw new ExportFormatError(`line ${line}: ${k} is not 64 hex digits`);
    }
  }
  if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq)) {
    throw new ExportFormatError(`line ${line}: seq is not a whole number`);
  }
  return {
    ...chainedContentOf(v as unknown as ChainedContent),
    prev_hash: Buffer.from(v.prev_hash as string, 'hex'),
    hash: Buffer.from(v.hash as string, 'hex'),
  };
}

/**
 * Verifies an export, line by line (memory: the checkpoints, not the rows), against the given
 * public keys. Throws ExportFormatError for a file that is not an export.
 */
export async function verifyExport(
  lines: AsyncIterable<string>,
  keys: ReadonlyMap<string, KeyObject>,
  onProgress?: (rows: number) => void,
): Promise<ExportReport> {
  const verifier = new ChainVerifier(keys);
  let n = 0;
  let header: ExportHeader | undefined;
  let ended = false;
  let rows = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() === '') {
      continue;
    }
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ExportFormatError(`line ${n}: not JSON`);
    }
    if (!header) {
      if (v.format !== EXPORT_FORMAT) {
        throw new ExportFormatError(
          `line ${n}: not an audit export (the first line must have "format":"${EXPORT_FORMAT}"; make one with lqctl audit export)`,
        );
      }
      header = v as unknown as ExportHeader;
      continue;
    }
    if (ended) {
      throw new ExportFormatError(`line ${n}: a line after the end line`);
    }
    switch (v.type) {
      case 'checkpoint': {
        let c: AuditCheckpoint;
        try {
          c = parseCheckpoint(v);
        } catch (err) {
          throw new ExportFormatError(`line ${n}: ${(err as Error).message}`);
        }
        verifier.addCheckpoint(c, typeof v.source === 'string' ? v.source : 'file');
        break;
      }
      case 'event':
        verifier.push(eventOf(v, n));
        rows++;
        if (onProgress && rows % 100_000 === 0) {
          onProgress(rows);
        }
        break;
      case 'end':
        ended = true;
        break;
      default:
        throw new ExportFormatError(`line ${n}: unknown type ${JSON.stringify(v.type)}`);
    }
  }
  if (!header) {
    throw new ExportFormatError('the file is empty');
  }
  const report = verifier.finish();
  return {
    ...report,
    ok: report.ok && ended,
    complete: ended,
    exported_at: typeof header.exported_at === 'string' ? header.exported_at : null,
  };
}
