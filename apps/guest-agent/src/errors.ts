import { ErrorCode } from '@lq/proto';

/** A failure that answers a request with `Error { code, message }`. */
export class AgentOpError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentOpError';
  }
}

const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOENT: ErrorCode.NOT_FOUND,
  ENOTDIR: ErrorCode.NOT_FOUND,
  EACCES: ErrorCode.PERMISSION_DENIED,
  EPERM: ErrorCode.PERMISSION_DENIED,
  EROFS: ErrorCode.PERMISSION_DENIED,
  EFBIG: ErrorCode.TOO_LARGE,
  ENOSPC: ErrorCode.IO_ERROR,
};

/** Maps anything thrown by a handler to a code and a message that says what failed. */
export function toAgentOpError(err: unknown, what: string): AgentOpError {
  if (err instanceof AgentOpError) {
    return err;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string') {
    const code = ERRNO_CODES[e.code] ?? ErrorCode.IO_ERROR;
    return new AgentOpError(code, `${what}: ${e.code}: ${e.message}`);
  }
  return new AgentOpError(ErrorCode.INTERNAL, `${what}: ${(e as Error)?.message ?? String(err)}`);
}
