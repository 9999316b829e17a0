// Whether a Windows path is absolute: all config validation (config/rules.ts) needs of the Windows
// path rules, apart from them so that loading the config loads no protobuf code (windows-paths.ts
// builds AgentOpErrors, which carry @lq/proto's ErrorCode).

/** A drive letter and its root separator (`C:\`). */
export const DRIVE = /^[A-Za-z]:\\/;

/** Whether a config value is an absolute Windows path (drive or UNC). */
export function isAbsoluteWindowsPath(path: string): boolean {
  return DRIVE.test(path) || /^\\\\[^\\?.]/.test(path);
}
