// The platform this agent runs on, chosen once (host-os.ts).
import { HOST_OS } from '../os/host-os.js';
import { linuxPlatform } from './linux.platform.js';
import type { GuestPlatform } from './platform.js';
import { windowsPlatform } from './windows.platform.js';

export const currentPlatform: GuestPlatform =
  HOST_OS === 'windows' ? windowsPlatform : linuxPlatform;
