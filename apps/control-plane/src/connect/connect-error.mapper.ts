import { Code, ConnectError } from '@connectrpc/connect';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';

const CODES: Record<VmGuestErrorCode, Code> = {
  [VmGuestErrorCode.INVALID_REQUEST]: Code.InvalidArgument,
  [VmGuestErrorCode.VM_NOT_FOUND]: Code.NotFound,
  [VmGuestErrorCode.AGENT_NOT_CONNECTED]: Code.FailedPrecondition,
  [VmGuestErrorCode.AGENT_ERROR]: Code.Unknown,
  [VmGuestErrorCode.AGENT_TIMEOUT]: Code.DeadlineExceeded,
  [VmGuestErrorCode.NODE_TIMEOUT]: Code.DeadlineExceeded,
  [VmGuestErrorCode.NODE_UNAVAILABLE]: Code.Unavailable,
  [VmGuestErrorCode.INTERNAL]: Code.Internal,
};

// Agent refusals that are the caller's doing.
const AGENT_CODES: Record<string, Code> = {
  PATH_NOT_ALLOWED: Code.PermissionDenied,
  OPERATION_BLOCKED: Code.PermissionDenied,
  PERMISSION_DENIED: Code.PermissionDenied,
  NOT_FOUND: Code.NotFound,
  INVALID_REQUEST: Code.InvalidArgument,
  USER_NOT_FOUND: Code.InvalidArgument,
  GROUP_NOT_FOUND: Code.InvalidArgument,
  TOO_LARGE: Code.ResourceExhausted,
  BUSY: Code.ResourceExhausted,
};

/** VmGuestException → ConnectError (Connect and gRPC statuses); internals are not sent. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  if (err instanceof VmGuestException) {
    if (err.code === VmGuestErrorCode.INTERNAL) {
      return new ConnectError('internal error', Code.Internal);
    }
    const code =
      err.code === VmGuestErrorCode.AGENT_ERROR && err.agentCode
        ? (AGENT_CODES[err.agentCode] ?? Code.Unknown)
        : CODES[err.code];
    return new ConnectError(`${err.code}: ${err.message}`, code);
  }
  return new ConnectError('internal error', Code.Internal);
}
