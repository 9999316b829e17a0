import { create } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { ErrorCode, SyncTimeResponseSchema, type AgentPayload } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { currentPlatform } from '../platform/current-platform.js';
import type { ClockControl, GuestPlatform } from '../platform/platform.js';
import { describeResult, succeeded } from '../system/run-command.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

/**
 * time.sync (the seed's §7.3): the guest's own time service steps the clock when there is one
 * (Linux: chrony, systemd-timesyncd, ntpd, ntpdate; Windows: w32time) — otherwise, or with
 * force, the clock is set from host_time, and the RTC from the clock where the OS leaves that to
 * us (platform/*: ClockControl).
 */
export class SyncTimeHandler implements OperationHandler<'syncTime'> {
  readonly requestCase = 'syncTime' as const;

  private readonly clock: ClockControl;

  constructor(config: AgentConfig, platform: Pick<GuestPlatform, 'clock'> = currentPlatform) {
    this.clock = platform.clock(config);
  }

  async handle(request: RequestOf<'syncTime'>, ctx: HandlerContext): Promise<AgentPayload> {
    const received = performance.now();
    const hostMs = request.hostTime ? timestampMs(request.hostTime) : undefined;
    const hostNow = () =>
      hostMs === undefined ? undefined : hostMs + (performance.now() - received);
    const offsetBefore = hostMs === undefined ? undefined : hostMs - Date.now();
    let method = request.force ? undefined : await this.clock.syncByService();
    let rtcError = '';
    if (!method) {
      const target = hostNow();
      if (target === undefined) {
        throw new AgentOpError(
          ErrorCode.NOT_FOUND,
          request.force
            ? 'force needs host_time'
            : 'no time service (chrony, systemd-timesyncd, ntpd, ntpdate) found; give host_time to set the clock from the host',
        );
      }
      const set = await this.clock.setClock(target);
      if (!succeeded(set)) {
        throw new AgentOpError(
          ErrorCode.IO_ERROR,
          `setting the clock failed (${describeResult(set)}: ${set.stderr.trim().slice(0, 200)})`,
        );
      }
      const rtc = await this.clock.syncRtc();
      if (rtc && !succeeded(rtc)) {
        rtcError = `${describeResult(rtc)}: ${rtc.stderr.trim().slice(0, 200)}`;
      }
      method = 'host_time';
    }
    const after = hostNow();
    ctx.log.info('time synced', { method, offsetBeforeMs: offsetBefore });
    return {
      case: 'syncTimeResponse',
      value: create(SyncTimeResponseSchema, {
        method,
        offsetBeforeMs: offsetBefore,
        offsetAfterMs: after === undefined ? undefined : after - Date.now(),
        rtcError,
      }),
    };
  }
}
