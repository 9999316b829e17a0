import { AuditErrorCode, AuditException } from '@lq/audit';
import { AuthErrorCode, AuthException } from '@lq/auth';
import { DomainException, type ErrorKind } from './domain.exception.js';

const AUTH_KINDS: Record<AuthErrorCode, ErrorKind> = {
  [AuthErrorCode.UNAUTHENTICATED]: 'unauthenticated',
  [AuthErrorCode.PERMISSION_DENIED]: 'forbidden',
  [AuthErrorCode.AUTH_UNAVAILABLE]: 'unavailable',
  [AuthErrorCode.RATE_LIMITED]: 'rate_limited',
};

const AUDIT_KINDS: Record<AuditErrorCode, ErrorKind> = {
  [AuditErrorCode.AUDIT_UNAVAILABLE]: 'unavailable',
  [AuditErrorCode.INVALID_RECORD]: 'invalid',
  [AuditErrorCode.INVALID_QUERY]: 'invalid',
};

/** A failure as every transport reports it: code, kind, message and body fields. */
export interface ReportedError {
  code: string;
  kind: ErrorKind;
  message: string;
  details: Record<string, string>;
  /** Seconds before a retry can succeed (Retry-After), when known. */
  retryAfterSeconds?: number;
}

/**
 * Any thrown value as a ReportedError: domain exceptions and the libraries' own (auth, audit);
 * anything else is an internal error whose message is not to be sent.
 */
export function reportError(err: unknown): ReportedError {
  if (err instanceof DomainException) {
    const e = err as DomainException;
    return { code: e.code, kind: e.kind, message: e.message, details: e.details };
  }
  if (err instanceof AuthException) {
    return {
      code: err.code,
      kind: AUTH_KINDS[err.code],
      message: err.message,
      details: err.permission ? { permission: err.permission } : {},
      retryAfterSeconds: err.retryAfterSeconds,
    };
  }
  if (err instanceof AuditException) {
    return { code: err.code, kind: AUDIT_KINDS[err.code], message: err.message, details: {} };
  }
  return {
    code: 'INTERNAL',
    kind: 'internal',
    message: err instanceof Error ? err.message : String(err),
    details: {},
  };
}
