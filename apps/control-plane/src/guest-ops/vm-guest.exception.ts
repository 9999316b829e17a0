import { DomainException, type ErrorKind } from '../common/errors/domain.exception.js';

/** Why a guest operation failed, independent of the transport that reports it. */
export enum VmGuestErrorCode {
  /** Bad input; nothing was sent. */
  INVALID_REQUEST = 'INVALID_REQUEST',
  /** The inventory (or the node) does not know the VM. */
  VM_NOT_FOUND = 'VM_NOT_FOUND',
  /** The request is larger than a configured limit (an upload over LQ_MAX_UPLOAD_BYTES). */
  TOO_LARGE = 'TOO_LARGE',
  /** The VM's agent is not connected to its node daemon. */
  AGENT_NOT_CONNECTED = 'AGENT_NOT_CONNECTED',
  /** The agent refused or failed; the message carries its code. */
  AGENT_ERROR = 'AGENT_ERROR',
  /** The agent did not answer in time (the node did). */
  AGENT_TIMEOUT = 'AGENT_TIMEOUT',
  /** The VM's node daemon did not answer in time. */
  NODE_TIMEOUT = 'NODE_TIMEOUT',
  /** No node daemon serves the VM's node (NATS: no responders), or NATS is down. */
  NODE_UNAVAILABLE = 'NODE_UNAVAILABLE',
  /** Something the request names (an execution, a run) does not exist. */
  NOT_FOUND = 'NOT_FOUND',
  /** The control plane's database does not answer. */
  STORE_UNAVAILABLE = 'STORE_UNAVAILABLE',
  /** The node daemon refused the control plane's signature (a key it does not trust). */
  SIGNATURE_REFUSED = 'SIGNATURE_REFUSED',
  /**
   * The node's reply could not be taken: larger than LQ_GUEST_REPLY_MAX_BYTES, parts that do not
   * fit together, or a part that never came (PROTOCOL.md §9 Reply parts).
   */
  REPLY_REFUSED = 'REPLY_REFUSED',
  /** This replica already serves as many output streams as it may (LQ_EXEC_FOLLOWERS_MAX). */
  STREAMS_FULL = 'STREAMS_FULL',
  INTERNAL = 'INTERNAL',
}

const KINDS: Record<VmGuestErrorCode, ErrorKind> = {
  [VmGuestErrorCode.INVALID_REQUEST]: 'invalid',
  [VmGuestErrorCode.TOO_LARGE]: 'too_large',
  [VmGuestErrorCode.VM_NOT_FOUND]: 'not_found',
  [VmGuestErrorCode.AGENT_NOT_CONNECTED]: 'conflict',
  [VmGuestErrorCode.AGENT_ERROR]: 'bad_gateway',
  [VmGuestErrorCode.AGENT_TIMEOUT]: 'timeout',
  [VmGuestErrorCode.NODE_TIMEOUT]: 'timeout',
  [VmGuestErrorCode.NODE_UNAVAILABLE]: 'unavailable',
  [VmGuestErrorCode.NOT_FOUND]: 'not_found',
  [VmGuestErrorCode.STORE_UNAVAILABLE]: 'unavailable',
  [VmGuestErrorCode.SIGNATURE_REFUSED]: 'bad_gateway',
  [VmGuestErrorCode.REPLY_REFUSED]: 'bad_gateway',
  [VmGuestErrorCode.STREAMS_FULL]: 'unavailable',
  [VmGuestErrorCode.INTERNAL]: 'internal',
};

export class VmGuestException extends DomainException<VmGuestErrorCode> {
  constructor(
    code: VmGuestErrorCode,
    message: string,
    /** The agent's own error code name, with AGENT_ERROR. */
    readonly agentCode?: string,
  ) {
    super(code, message);
  }

  /** The agent's refusal is the caller's fault when its code says so (a bad path, a limit). */
  get kind(): ErrorKind {
    return callerFaultOf(this) ?? KINDS[this.code];
  }

  override get details(): Record<string, string> {
    return this.agentCode ? { agentCode: this.agentCode } : {};
  }
}

/** How an agent's refusal is the caller's doing rather than the gateway's. */
export type CallerFault = Extract<
  ErrorKind,
  'invalid' | 'forbidden' | 'not_found' | 'too_large' | 'rate_limited' | 'conflict'
>;

const CALLER_FAULTS: Record<string, CallerFault> = {
  INVALID_REQUEST: 'invalid',
  USER_NOT_FOUND: 'invalid',
  GROUP_NOT_FOUND: 'invalid',
  PATH_NOT_ALLOWED: 'forbidden',
  // The caller's limits (run-as identity, file limits) refuse what the guest resolved.
  NOT_ALLOWED: 'forbidden',
  OPERATION_BLOCKED: 'forbidden',
  PERMISSION_DENIED: 'forbidden',
  NOT_FOUND: 'not_found',
  TOO_LARGE: 'too_large',
  BUSY: 'rate_limited',
  // The guest's filesystems are frozen: thaw first.
  FROZEN: 'conflict',
  // The path to create or rename onto exists.
  ALREADY_EXISTS: 'conflict',
  // The guest's OS cannot do it (a Windows guest asked to run as another user or to freeze):
  // asking again will not help, another guest might.
  UNSUPPORTED: 'conflict',
};

/** The caller's fault behind an AGENT_ERROR, if the agent's code names one; each transport maps it. */
export function callerFaultOf(e: VmGuestException): CallerFault | undefined {
  return e.code === VmGuestErrorCode.AGENT_ERROR && e.agentCode
    ? CALLER_FAULTS[e.agentCode]
    : undefined;
}
