import { create } from '@bufbuild/protobuf';
import { GetOsInfoResponseSchema, type AgentPayload, type OsInfo } from '@lq/proto';
import type { OperationHandler } from './handler.js';

/**
 * os.info: the OS facts alone (qemu-ga's guest-get-osinfo), from the agent's cache
 * (telemetry/system-info.ts cachedOsInfo): no interfaces, capabilities or hostname as GetInfo.
 */
export class GetOsInfoHandler implements OperationHandler<'getOsInfo'> {
  readonly requestCase = 'getOsInfo' as const;

  constructor(private readonly osInfo: () => Promise<OsInfo>) {}

  async handle(): Promise<AgentPayload> {
    return {
      case: 'getOsInfoResponse',
      value: create(GetOsInfoResponseSchema, { os: await this.osInfo() }),
    };
  }
}
