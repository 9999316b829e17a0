import { randomUUID } from 'node:crypto';
import { AuditException, AuditErrorCode } from './audit.exception.js';
import type { AuditRepository, VerifyOptions } from './audit.repository.js';
import { AuditRowRejected, type AuditWriter } from './audit-writer.js';
import { firstUnstorable, sha256Hex } from './redaction.js';
import type { OutputRedactor } from './output-redactor.js';
import type {
  AuditEventView,
  AuditFilter,
  AuditRecord,
  ExecutionView,
  VerifyReport,
} from './audit-record.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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
    /** Applied to output before it is stored (the command history). */
    private readonly redactor?: OutputRedactor,
  ) {}

  /**
   * Writes the intent; AuditException INVALID_RECORD (400) when it holds what the store cannot
   * keep or the store refused it, AUDIT_UNAVAILABLE (503) when it cannot be written: send nothing.
   */
  async intent(record: Omit<AuditRecord, 'kind'>): Promise<void> {
    const bad = firstUnstorable({
      actor: record.actor,
      vm_id: record.vmId,
      operation: record.operation,
      params: record.params,
    });
    if (bad !== undefined) {
      throw new AuditException(
        AuditErrorCode.INVALID_RECORD,
        `${bad} holds a NUL character or an unpaired UTF-16 surrogate, which can be neither audited nor sent; the operation was not sent`,
      );
    }
    if (!UUID.test(record.requestId)) {
      throw new AuditException(
        AuditErrorCode.INVALID_RECORD,
        `the request id ${JSON.stringify(record.requestId)} is not a UUID; the operation was not sent`,
      );
    }
    try {
      await this.writer.intent({ ...record, kind: 'intent' });
    } catch (err) {
      if (err instanceof AuditRowRejected) {
        throw new AuditException(
          AuditErrorCode.INVALID_RECORD,
          `the audit trail refused the request's intent (${err.message}); the operation was not sent`,
        );
      }
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
    // A row without a request of its own (a summary) still needs an id the column takes.
    const row = this.redacted(
      UUID.test(record.requestId) ? record : { ...record, requestId: randomUUID() },
    );
    const written = this.writer.record(row).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      written,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.outcomeWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /**
   * The record with its stored output redacted. The row keeps the digests of the output as the
   * agent returned it (what the caller got) and says what was redacted: how many matches per
   * stream and the digests of the stored copies (verify checks those).
   */
  private redacted(record: AuditRecord): AuditRecord {
    const output = record.output;
    if (!output || !this.redactor?.enabled) {
      return record;
    }
    const stdout = this.redactor.redact(output.stdout);
    const stderr = this.redactor.redact(output.stderr);
    if (stdout.count + stderr.count === 0) {
      return record;
    }
    return {
      ...record,
      params: {
        ...record.params,
        output_redaction: {
          redacted: true,
          stdout: stdout.count,
          stderr: stderr.count,
          stdout_sha256: sha256Hex(stdout.data),
          stderr_sha256: sha256Hex(stderr.data),
        },
      },
      output: { ...output, stdout: stdout.data, stderr: stderr.data },
    };
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

  async close(timeoutMs: number): Promise<void> {
    await this.writer.close(timeoutMs);
    // The writer's connection goes back to the pool, which closes next.
    this.repo.releaseHeld();
  }
}
