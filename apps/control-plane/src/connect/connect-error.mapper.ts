import { Code, ConnectError } from '@connectrpc/connect';
import type { ErrorKind } from '../common/errors/domain.exception.js';
import { reportError } from '../common/errors/error-kind.js';

/** Every kind of failure as a Connect (and gRPC) code: the one table RPCs answer from. */
export const CONNECT_CODE_OF_KIND: Record<ErrorKind, Code> = {
  invalid: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  forbidden: Code.PermissionDenied,
  not_found: Code.NotFound,
  conflict: Code.FailedPrecondition,
  too_large: Code.ResourceExhausted,
  rate_limited: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  timeout: Code.DeadlineExceeded,
  bad_gateway: Code.Unknown,
  internal: Code.Internal,
};

/** Anything thrown as a ConnectError, message prefixed with its code; internals are not sent. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) {
    return err;
  }
  const e = reportError(err);
  if (e.kind === 'internal') {
    return new ConnectError('internal error', Code.Internal);
  }
  return new ConnectError(`${e.code}: ${e.message}`, CONNECT_CODE_OF_KIND[e.kind]);
}
