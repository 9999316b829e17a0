export enum AuditErrorCode {
  /** The intent could not be written: the operation is refused and nothing is sent (503). */
  AUDIT_UNAVAILABLE = 'AUDIT_UNAVAILABLE',
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
