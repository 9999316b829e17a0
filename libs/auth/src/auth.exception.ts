import type { Permission } from './permissions.js';

export enum AuthErrorCode {
  /** No credentials, or bad, expired or revoked ones (401). */
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  /** Authenticated, but a permission is missing here (403). */
  PERMISSION_DENIED = 'PERMISSION_DENIED',
  /** The user and key store cannot be read (503). */
  AUTH_UNAVAILABLE = 'AUTH_UNAVAILABLE',
  /** Too many failed sign-ins for this user or from this address; retry later (429). */
  RATE_LIMITED = 'RATE_LIMITED',
}

export class AuthException extends Error {
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    /** With PERMISSION_DENIED: the permission that is missing. */
    readonly permission?: Permission,
    /** With RATE_LIMITED: seconds until a retry can succeed. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'AuthException';
  }

  static unauthenticated(message: string): AuthException {
    return new AuthException(AuthErrorCode.UNAUTHENTICATED, message);
  }

  static denied(permission: Permission, where: string): AuthException {
    return new AuthException(
      AuthErrorCode.PERMISSION_DENIED,
      `missing permission ${permission} ${where}`,
      permission,
    );
  }
}
