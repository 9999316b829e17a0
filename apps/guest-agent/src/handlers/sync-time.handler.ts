import { create } from '@bufbuild/protobuf';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { ErrorCode, SyncTimeResponseSchema, type AgentPayload } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import { describeResult, isExecutable, runCommand, succeeded } from '../system/run-command.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

const STEP_TIMEOUT_MS = 30_000;

/**
 * time.sync (the seed's §7.3): the guest's own time service steps the clock when there is one —
 * chrony (`chronyc makestep`), systemd-timesyncd (restart), ntpd (restart), ntpdate — otherwise,
 * or with force, the clock is set from host_time, and the RTC from the clock.
 */
export class SyncTimeHandler implements OperationHandler<'syncTime'> {
  readonly requestCase = 'syncTime' as const;

  constructor(private readonly config: AgentConfig) {}

  async handle(request: RequestOf<'syncTime'>, ctx: HandlerContext): Promise<AgentPayload> {
    const received = performance.now();
    const hostMs = request.hostTime ? timestampMs(request.hostTime) : undefined;
    const hostNow = () =>
      hostMs === undefined ? undefined : hostMs + (performance.now() - received);
    const offsetBefore = hostMs === undefined ? undefined : hostMs - Date.now();
    let method = request.force ? undefined : await this.byService();
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
      const set = await runCommand(
        [...this.config.commands.set_clock, `@${(target / 1000).toFixed(3)}`],
        { timeoutMs: STEP_TIMEOUT_MS },
      );
      if (!succeeded(set)) {
        throw new AgentOpError(
          ErrorCode.IO_ERROR,
          `setting the clock failed (${describeResult(set)}: ${set.stderr.trim().slice(0, 200)})`,
        );
      }
      const rtc = await runCommand(this.config.commands.hwclock_systohc, {
        timeoutMs: STEP_TIMEOUT_MS,
      });
      if (!succeeded(rtc)) {
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

  /** The first time service found that stepped the clock, or undefined. */
  private async byService(): Promise<string | undefined> {
    const c = this.config.commands;
    const run = (argv: string[]) => runCommand(argv, { timeoutMs: STEP_TIMEOUT_MS });
    if (await isExecutable(c.chronyc)) {
      if (succeeded(await run([c.chronyc, 'tracking']))) {
        const step = await run([c.chronyc, 'makestep']);
        if (succeeded(step)) {
          return 'chrony';
        }
      }
    }
    if (await isExecutable(c.systemctl)) {
      for (const [unit, name] of [
        ['systemd-timesyncd', 'systemd-timesyncd'],
        ['ntp', 'ntpd'],
        ['ntpsec', 'ntpd'],
      ] as const) {
        if (succeeded(await run([c.systemctl, 'is-active', '--quiet', unit]))) {
          if (succeeded(await run([c.systemctl, 'restart', unit]))) {
            return name;
          }
        }
      }
    }
    if (this.config.time.ntp_servers.length > 0 && (await isExecutable(c.ntpdate))) {
      if (succeeded(await run([c.ntpdate, '-u', ...this.config.time.ntp_servers]))) {
        return 'ntpdate';
      }
    }
    return undefined;
  }
}
