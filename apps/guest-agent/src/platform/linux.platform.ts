// The Linux guest: every part delegates to the module the agent always used, so the Linux agent
// behaves exactly as before the seam existed.
import type { ShutdownMode as Mode } from '@lq/proto';
import { ShutdownMode } from '@lq/proto';
import { VirtioDeviceChannel } from '../channel/virtio-device.channel.js';
import type { AgentConfig } from '../config/agent-config.js';
import { ProcessRunner } from '../exec/process-runner.js';
import type { UserResolver } from '../exec/user-resolver.js';
import { PathPolicy } from '../files/path-policy.js';
import type { Logger } from '../logger.js';
import { cachedOsInfo } from '../telemetry/system-info.js';
import { TelemetryCollector } from '../telemetry/telemetry-collector.js';
import { LinuxAccounts } from './linux/linux-accounts.js';
import { LinuxClock } from './linux/linux-clock.js';
import type { GuestPlatform } from './platform.js';
import { LINUX_DEFAULTS } from './platform-defaults.js';

export const linuxPlatform: GuestPlatform = {
  os: 'linux',
  defaultConfigPath: LINUX_DEFAULTS.configPath,
  defaultDevicePath: LINUX_DEFAULTS.devicePath,
  defaults: (config) => LINUX_DEFAULTS.apply(config),
  openDevice: (path) => new VirtioDeviceChannel(path),
  unsupported: () => ({}),
  execRunner: (config: AgentConfig, users: UserResolver, log?: Logger) =>
    new ProcessRunner(config, users, log),
  pathPolicy: (config) => new PathPolicy(config.files.roots),
  fileOwners: () => undefined,
  shutdownArgv(config, mode: Mode) {
    switch (mode) {
      case ShutdownMode.REBOOT:
        return config.commands.reboot;
      case ShutdownMode.HALT:
        return config.commands.halt;
      default:
        return config.commands.poweroff;
    }
  },
  clock: (config) => new LinuxClock(config),
  accounts: (config, users) => new LinuxAccounts(config, users),
  osInfo: (config) => cachedOsInfo(config.system.os_release_file),
  telemetry: (config, log) => new TelemetryCollector(config, log),
};
