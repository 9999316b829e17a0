export enum AuditErrorCode {
  /** The intent could not be written: the operation is refused and nothing is sent (503). */
  AUDIT_UNAVAILABLE = 'AUDIT_UNAVAILABLE',
  /**
   * The intent holds what the store cannot keep (NUL, an unpaired surrogate, a value out of
   * range) or the store refused it for its content: the operation is refused (400).
   */
  INVALID_RECORD = 'INVALID_RECORD',
  /** A query or export was asked wrongly (400). */
  INVALID_QUERY = 'INVALID_QUERY',
}

export class AuditException extends Error {
  constructor(
    readonly code: AuditErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AuditException';
  }
}
