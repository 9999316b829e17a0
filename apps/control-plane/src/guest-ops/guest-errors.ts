import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from '@nats-io/transport-node';
import { ErrorCode, GuestErrorCode } from '@lq/proto';
import { ConnectionLostError, GuestRequestError, ReplyPartsError } from '@lq/host';
import { DomainException } from '../common/errors/domain.exception.js';
import { VmGuestErrorCode, VmGuestException } from './vm-guest.exception.js';

const GUEST_CODES: Record<GuestErrorCode, VmGuestErrorCode> = {
  [GuestErrorCode.UNSPECIFIED]: VmGuestErrorCode.INTERNAL,
  [GuestErrorCode.VM_NOT_FOUND]: VmGuestErrorCode.VM_NOT_FOUND,
  [GuestErrorCode.AGENT_NOT_CONNECTED]: VmGuestErrorCode.AGENT_NOT_CONNECTED,
  [GuestErrorCode.AGENT_TIMEOUT]: VmGuestErrorCode.AGENT_TIMEOUT,
  [GuestErrorCode.AGENT_ERROR]: VmGuestErrorCode.AGENT_ERROR,
  [GuestErrorCode.INVALID_REQUEST]: VmGuestErrorCode.INVALID_REQUEST,
  [GuestErrorCode.INTERNAL]: VmGuestErrorCode.INTERNAL,
  [GuestErrorCode.SIGNATURE_REFUSED]: VmGuestErrorCode.SIGNATURE_REFUSED,
};

/**
 * Any failure of a guest request as the exception each transport maps: a node daemon's
 * GuestError by its code, NATS failures by the client library's error classes ("no responders"
 * is a node nobody serves, a timeout a node that did not answer in time, a closed or draining
 * connection NATS itself), domain exceptions as they are.
 */
export function guestFailure(err: unknown, vmId: string, nodeId: string): DomainException {
  if (err instanceof DomainException) {
    return err as DomainException;
  }
  if (err instanceof GuestRequestError) {
    const agentCode =
      err.code === GuestErrorCode.AGENT_ERROR ? ErrorCode[err.agentCode] : undefined;
    return new VmGuestException(GUEST_CODES[err.code], err.message, agentCode);
  }
  if (err instanceof ConnectionLostError) {
    // Not sent again (it could act twice): the caller is told at once, not at its timeout.
    return new VmGuestException(
      VmGuestErrorCode.NODE_UNAVAILABLE,
      `request to node ${nodeId} for VM ${vmId} interrupted: ${err.message}`,
    );
  }
  if (err instanceof ReplyPartsError) {
    return new VmGuestException(
      VmGuestErrorCode.REPLY_REFUSED,
      `the reply of node ${nodeId} for VM ${vmId} was refused: ${err.message}`,
    );
  }
  const cause = err instanceof RequestError ? err.cause : undefined;
  if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    return new VmGuestException(
      VmGuestErrorCode.NODE_UNAVAILABLE,
      `no node daemon is serving node ${nodeId} (VM ${vmId})`,
    );
  }
  if (err instanceof TimeoutError || cause instanceof TimeoutError) {
    return new VmGuestException(
      VmGuestErrorCode.NODE_TIMEOUT,
      `node ${nodeId} did not answer in time for VM ${vmId}`,
    );
  }
  if (err instanceof PermissionViolationError) {
    return new VmGuestException(
      VmGuestErrorCode.NODE_UNAVAILABLE,
      `NATS refused the request to node ${nodeId}: ${err.message} (check the control plane's NATS permissions)`,
    );
  }
  if (
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    err instanceof ConnectionError
  ) {
    return new VmGuestException(
      VmGuestErrorCode.NODE_UNAVAILABLE,
      `NATS is unavailable: ${err.message}`,
    );
  }
  return new VmGuestException(
    VmGuestErrorCode.INTERNAL,
    err instanceof Error ? err.message : String(err),
  );
}

/** Whether a failure is the guest-ops error `code` (e.g. the agent went away). */
export function isGuestError(e: unknown, code: VmGuestErrorCode): boolean {
  return e instanceof VmGuestException && e.code === code;
}
