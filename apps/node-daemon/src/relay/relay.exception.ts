import { GuestErrorCode, type ErrorCode } from '@lq/proto';

/** A guest operation the daemon answers with GuestError instead of the agent's reply. */
export class RelayException extends Error {
  constructor(
    readonly code: GuestErrorCode,
    message: string,
    readonly agentCode?: ErrorCode,
  ) {
    super(message);
    this.name = 'RelayException';
  }
}
