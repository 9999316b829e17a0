// time.sync on Linux: the guest's own time service steps the clock when there is one — chrony
// (`chronyc makestep`), systemd-timesyncd (restart), ntpd (restart), ntpdate — otherwise the
// clock is set from host time (commands.set_clock) and the RTC from the clock.
import type { AgentConfig } from '../../config/agent-config.js';
import { isExecutable, runCommand, succeeded } from '../../system/run-command.js';
import type { ClockControl } from '../platform.js';

const STEP_TIMEOUT_MS = 30_000;

export class LinuxClock implements ClockControl {
  constructor(private readonly config: AgentConfig) {}

  async syncByService(): Promise<string | undefined> {
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

  setClock(epochMs: number) {
    return runCommand([...this.config.commands.set_clock, `@${(epochMs / 1000).toFixed(3)}`], {
      timeoutMs: STEP_TIMEOUT_MS,
    });
  }

  syncRtc() {
    return runCommand(this.config.commands.hwclock_systohc, { timeoutMs: STEP_TIMEOUT_MS });
  }
}
