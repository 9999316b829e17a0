// The part of the platform that config loading needs (kept apart from platform.ts so that
// config.ts imports nothing heavier): default paths and this OS's built-in settings.
import type { AgentConfig } from '../config/agent-config.js';
import { HOST_OS, type PlatformOs } from '../os/host-os.js';
import {
  WINDOWS_CONFIG_PATH,
  WINDOWS_DEVICE_PATH,
  applyWindowsDefaults,
} from './windows/windows-defaults.js';

export interface PlatformDefaults {
  configPath: string;
  devicePath: string;
  apply(config: AgentConfig): AgentConfig;
}

export const LINUX_DEFAULTS: PlatformDefaults = {
  configPath: '/etc/limiquantix/agent.json',
  devicePath: '/dev/virtio-ports/org.limiquantix.agent.0',
  // The shared defaults are Linux's.
  apply: (config) => config,
};

export const WINDOWS_DEFAULTS: PlatformDefaults = {
  configPath: WINDOWS_CONFIG_PATH,
  devicePath: WINDOWS_DEVICE_PATH,
  apply: applyWindowsDefaults,
};

export const defaultsFor = (os: PlatformOs): PlatformDefaults =>
  os === 'windows' ? WINDOWS_DEFAULTS : LINUX_DEFAULTS;

export const PLATFORM_DEFAULTS = defaultsFor(HOST_OS);
