import { create } from '@bufbuild/protobuf';
import { GetInfoResponseSchema, type AgentInfo, type AgentPayload } from '@lq/proto';
import type { OperationHandler } from './handler.js';

export class GetInfoHandler implements OperationHandler<'getInfo'> {
  readonly requestCase = 'getInfo' as const;

  constructor(private readonly collectInfo: () => Promise<AgentInfo>) {}

  async handle(): Promise<AgentPayload> {
    return {
      case: 'getInfoResponse',
      value: create(GetInfoResponseSchema, { info: await this.collectInfo() }),
    };
  }
}
