import { create } from '@bufbuild/protobuf';
import { CancelExecutionResponseSchema, ErrorCode, type AgentPayload } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import type { ExecRunner } from '../platform/platform.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/**
 * cancelExecution: stops a running execution by the id the host gave it (its process group gets
 * SIGTERM, then SIGKILL). Allowed when execute is: it only ever stops what execute started.
 */
export class CancelExecutionHandler implements OperationHandler<'cancelExecution'> {
  readonly requestCase = 'cancelExecution' as const;

  constructor(private readonly runner: ExecRunner) {}

  handle(request: RequestOf<'cancelExecution'>, ctx: HandlerContext): Promise<AgentPayload> {
    if (request.executionId === '') {
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, 'execution_id is required');
    }
    const found = this.runner.cancel(request.executionId);
    ctx.log.info('execution cancel', { executionId: request.executionId, found });
    return Promise.resolve({
      case: 'cancelExecutionResponse',
      value: create(CancelExecutionResponseSchema, { found }),
    });
  }
}
