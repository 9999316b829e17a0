import type { AgentPayload, AgentUpdateRequest } from '@lq/proto';
import type { SelfUpdater } from '../update/self-updater.js';
import type { HandlerContext, OperationHandler } from './handler.js';

/** agent.update (PROTOCOL.md §10): chunks, commit, status and abort, all in the self-updater. */
export class AgentUpdateHandler implements OperationHandler<'agentUpdate'> {
  readonly requestCase = 'agentUpdate' as const;

  constructor(private readonly updater: SelfUpdater) {}

  async handle(request: AgentUpdateRequest, ctx: HandlerContext): Promise<AgentPayload> {
    return {
      case: 'agentUpdateResponse',
      value: await this.updater.handle(request, (fn) => ctx.afterReply(fn)),
    };
  }
}
