import { Inject, Injectable } from '@nestjs/common';
import {
  AuditService,
  CheckpointRepository,
  EXPORT_FORMAT,
  type AuditCheckpoint,
  type ExportHeader,
  type VerifyReport,
} from '@lq/audit';
import { AuditCheckpointer } from './audit-checkpointer.js';

const EXPORT_PAGE = 1000;

/**
 * Whether the audit trail is whole: the chain checked against the latest signed checkpoint
 * (the JetStream stream's, else the table's), and the export that lets an auditor check it
 * offline (`lqctl audit verify FILE --public-key K`).
 */
@Injectable()
export class AuditIntegrityService {
  constructor(
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(AuditCheckpointer) private readonly checkpointer: AuditCheckpointer,
    @Inject(CheckpointRepository) private readonly checkpoints: CheckpointRepository,
  ) {}

  async verify(onProgress?: (rows: number, lastSeq: number | null) => void): Promise<VerifyReport> {
    const { checkpoint, note } = await this.streamCheckpoint();
    const report = await this.audit.verify({
      keys: this.checkpointer.verifyingKeys(),
      external: checkpoint ? [{ checkpoint, source: 'jetstream' }] : [],
      onProgress,
    });
    return note ? { ...report, checkpoint_note: note } : report;
  }

  /** The export's lines (lq-audit-export/1, libs/audit/src/offline/export-format.ts), lazily. */
  async *exportLines(): AsyncGenerator<string> {
    const header: ExportHeader = {
      format: EXPORT_FORMAT,
      exported_at: new Date().toISOString(),
      public_keys: [this.checkpointer.publicKey()],
    };
    yield `${JSON.stringify(header)}\n`;
    let checkpoints = 0;
    const { checkpoint } = await this.streamCheckpoint();
    if (checkpoint) {
      checkpoints++;
      yield `${JSON.stringify({ type: 'checkpoint', source: 'jetstream', ...checkpoint })}\n`;
    }
    for (let after = 1; ;) {
      const page = await this.checkpoints.between(after, Number.MAX_SAFE_INTEGER, EXPORT_PAGE);
      for (const c of page) {
        checkpoints++;
        yield `${JSON.stringify({ type: 'checkpoint', source: 'table', ...c })}\n`;
      }
      if (page.length < EXPORT_PAGE) {
        break;
      }
      after = page.at(-1)!.seq + 1;
    }
    let rows = 0;
    for (let from = 1; ;) {
      const page = await this.checkpoints.rows(from, EXPORT_PAGE);
      for (const r of page) {
        rows++;
        yield `${JSON.stringify({
          type: 'event',
          ...r,
          prev_hash: r.prev_hash.toString('hex'),
          hash: r.hash.toString('hex'),
        })}\n`;
      }
      if (page.length < EXPORT_PAGE) {
        break;
      }
      from = page.at(-1)!.seq + 1;
    }
    yield `${JSON.stringify({ type: 'end', rows, checkpoints })}\n`;
  }

  private async streamCheckpoint(): Promise<{ checkpoint?: AuditCheckpoint; note?: string }> {
    if (!this.checkpointer.jetstreamEnabled) {
      return {
        note: 'JetStream checkpoints are off (LQ_AUDIT_CHECKPOINT_JETSTREAM=off): compared with the checkpoint table only',
      };
    }
    try {
      const checkpoint = await this.checkpointer.streamLatest();
      return checkpoint
        ? { checkpoint }
        : {
            note: 'the JetStream stream holds no checkpoint yet: compared with the checkpoint table',
          };
    } catch (err) {
      return {
        note: `the JetStream checkpoint could not be read (${(err as Error).message}): compared with the checkpoint table only`,
      };
    }
  }
}
