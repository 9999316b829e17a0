import { AuditException, AuditErrorCode } from './audit.exception.js';
import type { AuditRepository, VerifyOptions } from './audit.repository.js';
import type { AuditWriter } from './audit-writer.js';
import type {
  AuditEventView,
  AuditFilter,
  AuditRecord,
  ExecutionView,
  VerifyReport,
} from './audit-record.js';

/**
 * The audit trail: intents written before an operation is sent (their failure refuses the
 * operation), outcomes and other rows written reliably after, and the auditors' reads.
 */
export class AuditService {
  constructor(
    private readonly repo: AuditRepository,
    private readonly writer: AuditWriter,
    /** How long an outcome write may hold up the response before it continues in background. */
    private readonly outcomeWaitMs: number,
  ) {}

  /** Writes the intent; AuditException AUDIT_UNAVAILABLE when it cannot be (send nothing). */
  async intent(record: Omit<AuditRecord, 'kind'>): Promise<void> {
    try {
      await this.writer.intent({ ...record, kind: 'intent' });
    } catch (err) {
      throw new AuditException(
        AuditErrorCode.AUDIT_UNAVAILABLE,
        `the audit trail cannot be written (${(err as Error).message}); the operation was not sent`,
      );
    }
  }

  /**
   * Appends a row that must not be lost (outcome, denial, failed sign-in, admin act). Waits
   * for it up to outcomeWaitMs, so auditors read what callers were just told; past that it
   * keeps retrying in the background.
   */
  async record(record: AuditRecord): Promise<void> {
    const written = this.writer.record(record).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      written,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.outcomeWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  events(filter: AuditFilter): Promise<AuditEventView[]> {
    return this.repo.events(filter);
  }

  executions(filter: AuditFilter): Promise<ExecutionView[]> {
    return this.repo.executions(filter);
  }

  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    return this.repo.verify(options);
  }

  get pendingRows(): number {
    return this.writer.pending;
  }

  close(timeoutMs: number): Promise<void> {
    return this.writer.close(timeoutMs);
  }
}
