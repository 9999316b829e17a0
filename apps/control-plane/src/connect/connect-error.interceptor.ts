import { Logger } from '@nestjs/common';
import { ConnectError, type Interceptor } from '@connectrpc/connect';
import { toConnectError } from './connect-error.mapper.js';

const log = new Logger('connect');

/**
 * The last word on what a Connect or gRPC caller sees of a failure: a ConnectError passes as
 * it is (handlers build them from VmGuestException codes); anything else is logged here with
 * its stack and leaves as INTERNAL "internal error", never with its message or stack.
 */
export const hideInternalErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    if (!(err instanceof ConnectError)) {
      log.error(
        `${req.method.parent.typeName}/${req.method.name} failed`,
        err instanceof Error ? err.stack : String(err),
      );
    }
    throw toConnectError(err);
  }
};
