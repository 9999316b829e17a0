import { Code, ConnectError } from '@connectrpc/connect';
import { AuditErrorCode, AuditException } from '@lq/audit';
import { AuthErrorCode, AuthException } from '@lq/auth';
import {
  VmGuestErrorCode,
  VmGuestException,
  callerFaultOf,
  type CallerFault,
} from '../guest-ops/vm-guest.exception.js';

const CODES: Record<VmGuestErrorCode, Code> = {
  [VmGuestErrorCode.INVALID_REQUEST]: Code.InvalidArgument,
  [VmGuestErrorCode.VM_NOT_FOUND]: Code.NotFound,
  [VmGuestErrorCode.AGENT_NOT_CONNECTED]: Code.FailedPrecondition,
  [VmGuestErrorCode.AGENT_ERROR]: Code.Unknown,
  [VmGuestErrorCode.AGENT_TIMEOUT]: Code.DeadlineExceeded,
  [VmGuestErrorCode.NODE_TIMEOUT]: Code.DeadlineExceeded,
  [VmGuestErrorCode.NODE_UNAVAILABLE]: Code.Unavailable,
  [VmGuestErrorCode.STORE_UNAVAILABLE]: Code.Unavailable,
  [VmGuestErrorCode.NOT_FOUND]: Code.NotFound,
  [VmGuestErrorCode.INTERNAL]: Code.Internal,
};

const AUTH_CODES: Record<AuthErrorCode, Code> = {
  [AuthErrorCode.UNAUTHENTICATED]: Code.Unauthenticated,
  [AuthErrorCode.PERMISSION_DENIED]: Code.PermissionDenied,
  [AuthErrorCode.AUTH_UNAVAILABLE]: Code.Unavailable,
  [AuthErrorCode.RATE_LIMITED]: Code.ResourceExhausted,
};

const AUDIT_CODES: Record<AuditErrorCode, Code> = {
  [AuditErrorCode.AUDIT_UNAVAILABLE]: Code.Unavailable,
  [AuditErrorCode.INVALID_QUERY]: Code.InvalidArgument,
};

const CALLER_FAULT_CODES: Record<CallerFault, Code> = {
  invalid: Code.InvalidArgument,
  forbidden: Code.PermissionDenied,
  not_found: Code.NotFound,
  too_large: Code.ResourceExhausted,
  busy: Code.ResourceExhausted,
  conflict: Code.FailedPrecondition,
};

/** VmGuestException → ConnectError (Connect and gRPC statuses); internals are not sent. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  if (err instanceof AuthException) {
    return new ConnectError(`${err.code}: ${err.message}`, AUTH_CODES[err.code]);
  }
  if (err instanceof AuditException) {
    return new ConnectError(`${err.code}: ${err.message}`, AUDIT_CODES[err.code]);
  }
  if (err instanceof VmGuestException) {
    if (err.code === VmGuestErrorCode.INTERNAL) {
      return new ConnectError('internal error', Code.Internal);
    }
    const fault = callerFaultOf(err);
    const code = fault ? CALLER_FAULT_CODES[fault] : CODES[err.code];
    return new ConnectError(`${err.code}: ${err.message}`, code);
  }
  return new ConnectError('internal error', Code.Internal);
}
