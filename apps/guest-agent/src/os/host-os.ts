// Which OS this agent runs on, decided once from process.platform; everything OS-specific asks
// the platform (platform/platform.ts) chosen from it, never process.platform again. A leaf in
// os/, with the pure Windows path rules, so that config, files and platform may all import it.
export type PlatformOs = 'linux' | 'windows';

export const HOST_OS: PlatformOs = process.platform === 'win32' ? 'windows' : 'linux';
