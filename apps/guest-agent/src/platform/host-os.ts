// Which OS this agent runs on, decided once from process.platform; everything OS-specific asks
// the platform (platform.ts) chosen from it, never process.platform again.
export type PlatformOs = 'linux' | 'windows';

export const HOST_OS: PlatformOs = process.platform === 'win32' ? 'windows' : 'linux';
