import { Logger } from '@nestjs/common';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { toConnectError } from './connect-error.mapper.js';

const log = new Logger('connect');

/**
 * Maps what a VMService handler throws to what a Connect or gRPC caller sees (toConnectError:
 * VmGuestException codes to Connect codes). Anything unexpected, and INTERNAL, is logged here
 * with its stack and leaves as INTERNAL "internal error", never with its message or stack.
 */
export const hideInternalErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    const mapped = toConnectError(err);
    if (mapped.code === Code.Internal && !(err instanceof ConnectError)) {
      log.error(
        `${req.method.parent.typeName}/${req.method.name} failed`,
        err instanceof Error ? err.stack : String(err),
      );
    }
    throw mapped;
  }
};
