import { create } from '@bufbuild/protobuf';
import {
  GetOsInfoResponseSchema,
  stablePayload,
  type AgentPayload,
  type GetOsInfoResponse,
  type OsInfo,
} from '@lq/proto';
import type { OperationHandler } from './handler.js';

/**
 * os.info: the OS facts alone (qemu-ga's guest-get-osinfo), from the agent's cache
 * (telemetry/system-info.ts cachedOsInfo): no interfaces, capabilities or hostname as GetInfo.
 * The cache hands out the same OsInfo until the facts change, so the reply is built and encoded
 * once per answer (stablePayload): a host polling os.info gets bytes already made.
 */
export class GetOsInfoHandler implements OperationHandler<'getOsInfo'> {
  readonly requestCase = 'getOsInfo' as const;
  private last: { os: OsInfo; response: GetOsInfoResponse } | undefined;

  constructor(private readonly osInfo: () => Promise<OsInfo>) {}

  async handle(): Promise<AgentPayload> {
    const os = await this.osInfo();
    let last = this.last;
    if (last === undefined || last.os !== os) {
      const response = stablePayload('getOsInfoResponse', create(GetOsInfoResponseSchema, { os }));
      last = { os, response: Object.freeze(response) };
      this.last = last;
    }
    return { case: 'getOsInfoResponse', value: last.response };
  }
}
