import { ErrorCode, type AgentPayload } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import type { OperationHandler, RequestCase } from './handler.js';

/** An operation the guest's OS cannot serve yet (GuestPlatform.unsupported): UNSUPPORTED, why. */
export class UnsupportedHandler implements OperationHandler {
  constructor(
    readonly requestCase: RequestCase,
    private readonly reason: string,
  ) {}

  handle(): Promise<AgentPayload> {
    return Promise.reject(new AgentOpError(ErrorCode.UNSUPPORTED, this.reason));
  }
}
