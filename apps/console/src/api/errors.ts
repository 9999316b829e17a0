import type { ErrorBody } from '@lq/api';

/** What the console reads of the control plane's error body (@lq/api's ErrorBody). */
export type ErrorFields = Partial<
  Pick<ErrorBody, 'code' | 'message' | 'permission' | 'agentCode' | 'correlationId'>
>;

/** The error fields of a parsed response body, whatever it holds (a proxy's JSON too). */
export function errorFieldsOf(body: unknown): ErrorFields {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Partial<
    Record<keyof ErrorBody, unknown>
  >;
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    code: str(b.code),
    message: str(b.message),
    permission: str(b.permission),
    agentCode: str(b.agentCode),
    correlationId: str(b.correlationId),
  };
}

/** A failed API call: the HTTP status and the control plane's error body. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly permission?: string;
  readonly agentCode?: string;
  readonly correlationId?: string;

  constructor(status: number, body: ErrorFields) {
    super(body.message ?? `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code ?? (status === 0 ? 'NETWORK' : `HTTP_${status}`);
    this.permission = body.permission;
    this.agentCode = body.agentCode;
    this.correlationId = body.correlationId;
  }
}

/** The control plane could not be reached at all (fetch rejected). */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = 'NetworkError';
  }
}

/** The session ended (refresh failed, or the key was revoked): sign in again. */
export class SessionExpiredError extends Error {
  constructor(message = 'the session has ended') {
    super(message);
    this.name = 'SessionExpiredError';
  }
}

/** A problem the console found itself, already in words. */
export class UserMessage extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserMessage';
  }
}

export interface ErrorWords {
  /** One sentence a person understands without the API's vocabulary. */
  title: string;
  /** What to do about it, or the server's own words. */
  detail?: string;
  /** For a report to the operators. */
  reference?: string;
}

const PERMISSION_WORDS: Record<string, string> = {
  'vm.read': 'see VMs',
  'guest.exec': 'run commands in guests',
  'guest.file.read': 'download guest files',
  'guest.file.write': 'upload guest files',
  'guest.power': 'shut down or reboot guests',
  'guest.quiesce': 'freeze guest filesystems',
  'guest.time': 'set guest clocks',
  'guest.password': 'reset guest passwords',
  'audit.read': 'read the audit trail',
  admin: 'administer users, keys and projects',
};

/** Turns any error the console meets into words (never a code alone, never a blank). */
export function describeError(err: unknown): ErrorWords {
  if (err instanceof SessionExpiredError) {
    return { title: 'Your session has ended.', detail: 'Sign in again to continue.' };
  }
  if (err instanceof UserMessage) {
    return { title: err.message };
  }
  if (err instanceof NetworkError) {
    return {
      title: 'The control plane cannot be reached.',
      detail: 'Check your network connection; the console retries on its own where it can.',
    };
  }
  if (!(err instanceof ApiError)) {
    const message = err instanceof Error ? err.message : String(err);
    return { title: 'Something went wrong in the console.', detail: message };
  }
  const reference = err.correlationId ? `Reference ${err.correlationId}` : undefined;
  const server = err.message;
  const words = (title: string, detail?: string): ErrorWords => ({ title, detail, reference });
  switch (err.code) {
    case 'UNAUTHENTICATED':
      return words('You are not signed in (or your key is no longer valid).', server);
    case 'PERMISSION_DENIED': {
      const what = err.permission ? PERMISSION_WORDS[err.permission] : undefined;
      return words(
        err.permission
          ? `Permission missing: “${err.permission}”${what ? ` (${what})` : ''}.`
          : 'Permission missing.',
        'Ask an administrator for a role that grants it on this project.',
      );
    }
    case 'AGENT_NOT_CONNECTED':
      return words(
        'The guest agent of this VM is not connected.',
        'Check that the VM is running and that the agent runs inside it.',
      );
    case 'AGENT_TIMEOUT':
      return words('The guest agent did not answer in time.', server);
    case 'AGENT_ERROR':
      return words(
        `The guest agent refused or failed${err.agentCode ? ` (${err.agentCode})` : ''}.`,
        server,
      );
    case 'NODE_TIMEOUT':
      return words('The VM’s node did not answer in time: the node may be unreachable.', server);
    case 'NODE_UNAVAILABLE':
      return words('The VM’s node is unreachable: no node daemon answers for it.', server);
    case 'VM_NOT_FOUND':
      return words(
        'This VM is not known to the inventory or to its node: its agent channel may be gone.',
        server,
      );
    case 'AUDIT_UNAVAILABLE':
      return words(
        'Refused: the audit trail cannot be written right now, so nothing was run.',
        server,
      );
    case 'STORE_UNAVAILABLE':
    case 'AUTH_UNAVAILABLE':
      return words('The control plane’s database does not answer.', server);
    case 'INVALID_REQUEST':
      return words('The request was not accepted.', server);
    default:
      break;
  }
  // Agent refusals that are the caller's fault come back as 403/404/400/413/429 with agentCode.
  switch (err.status) {
    case 400:
      return words('The request was not accepted.', server);
    case 403:
      return words('The guest refused this operation.', server);
    case 404:
      return words('Not found.', server);
    case 413:
      return words('Too large for the guest or the control plane.', server);
    case 429:
      return words('The guest agent is busy; try again in a moment.', server);
    case 503:
      return words('The service is unavailable right now.', server);
    default:
      return words(`Unexpected error (HTTP ${err.status}).`, server);
  }
}
