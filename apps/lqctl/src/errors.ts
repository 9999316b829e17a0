/** Bad command line: exit 2 with a pointer to the command's help. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    /** The command whose --help to point at. */
    readonly topic?: string,
  ) {
    super(message);
  }
}

/** The control plane answered with an error: { statusCode, code, message, permission? }. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly permission?: string,
    /** On an agent's refusal: the agent's own code (EXEC_FAILED, USER_NOT_FOUND, FROZEN, …). */
    readonly agentCode?: string,
  ) {
    super(message);
  }
}

/** The control plane could not be reached (refused, DNS, TLS, reset before an answer). */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
  constructor(
    readonly server: string,
    readonly reason: string,
  ) {
    super(`cannot reach the control plane at ${server}: ${reason}`);
  }
}

/** The control plane has no such operation (yet): exit 2. */
export class NotOfferedError extends Error {
  override readonly name = 'NotOfferedError';
}

/** A followed stream broke and did not come back in time. */
export class StreamLostError extends Error {
  override readonly name = 'StreamLostError';
}

/** Why a fetch failed, in words: "ECONNREFUSED 127.0.0.1:8080" rather than "fetch failed". */
export function networkCause(err: unknown): string {
  // Duck-typed, not instanceof: fetch's errors may come from another realm (jest's VM modules).
  type Failure = {
    code?: unknown;
    message?: unknown;
    cause?: unknown;
    address?: unknown;
    port?: unknown;
  };
  let e = err as Failure | null | undefined;
  for (let depth = 0; depth < 4 && typeof e === 'object' && e !== null; depth++) {
    if (typeof e.code === 'string' && e.code !== 'ERR_INVALID_STATE') {
      const where =
        typeof e.address === 'string'
          ? ` ${e.address}${typeof e.port === 'number' ? `:${e.port}` : ''}`
          : '';
      return `${e.code}${where}`;
    }
    if (e.cause === undefined) {
      break;
    }
    e = e.cause;
  }
  const m = e?.message;
  return typeof m === 'string' ? m : (JSON.stringify(e) ?? 'unknown error');
}

/** The user interrupted (Ctrl-C twice): exit 130. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor() {
    super('interrupted');
  }
}

/** The server refused a sign-in (wrong password, unknown or revoked key): exit 4. */
export class SignInError extends Error {
  override readonly name = 'SignInError';
}
