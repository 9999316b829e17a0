// The command lines of the Windows guest's administrative operations, built from validated input
// only: shutdown.exe, w32tm, Set-Date (host time), net user, taskkill. Each is an argv the agent
// spawns directly (no shell), so no value here is interpreted by cmd.exe.
import { ErrorCode, ShutdownMode } from '@lq/proto';
import { AgentOpError } from '../../errors.js';
import { shutdownCommand } from './shutdown-command.js';

export interface WindowsTools {
  shutdown: string;
  w32tm: string;
  powershell: string;
  net: string;
  taskkill: string;
}

export const SYSTEM32 = 'C:\\Windows\\System32';

export const DEFAULT_WINDOWS_TOOLS: WindowsTools = {
  shutdown: `${SYSTEM32}\\shutdown.exe`,
  w32tm: `${SYSTEM32}\\w32tm.exe`,
  powershell: `${SYSTEM32}\\WindowsPowerShell\\v1.0\\powershell.exe`,
  net: `${SYSTEM32}\\net.exe`,
  taskkill: `${SYSTEM32}\\taskkill.exe`,
};

/**
 * shutdown.exe for a mode (shutdown-command.ts). Windows has no halt that leaves the machine
 * powered on, so HALT is refused.
 */
export function shutdownArgv(shutdownExe: string, mode: ShutdownMode): string[] {
  switch (mode) {
    case ShutdownMode.POWEROFF:
    case ShutdownMode.UNSPECIFIED:
      return shutdownCommand(shutdownExe, false);
    case ShutdownMode.REBOOT:
      return shutdownCommand(shutdownExe, true);
    case ShutdownMode.HALT:
      throw new AgentOpError(
        ErrorCode.UNSUPPORTED,
        'Windows has no halt that leaves the machine powered on; use poweroff or reboot',
      );
    default:
      throw new AgentOpError(ErrorCode.INVALID_REQUEST, `unknown shutdown mode ${String(mode)}`);
  }
}

/** Asks the Windows Time service to resynchronise now (it fails when the service is stopped). */
export function timeResyncArgv(w32tm: string): string[] {
  return [w32tm, '/resync', '/force'];
}

/**
 * Sets the clock from host time (milliseconds since the epoch, UTC). The number is the only
 * input and is formatted by the agent, so the script is a constant plus digits.
 */
export function setClockArgv(powershell: string, epochMs: number): string[] {
  if (!Number.isFinite(epochMs) || epochMs < 0 || epochMs > 253_402_300_799_000) {
    throw new AgentOpError(ErrorCode.INVALID_REQUEST, `host_time ${epochMs} is out of range`);
  }
  const ms = Math.round(epochMs);
  return [
    powershell,
    '-NoProfile',
    '-NonInteractive',
    '-Command',
    `Set-Date -Date ([DateTimeOffset]::FromUnixTimeMilliseconds(${ms}).LocalDateTime) | Out-Null`,
  ];
}

// Local account names: at most 20 characters, none of " / \ [ ] : ; | = , + * ? < > @, not only
// dots or spaces (Microsoft: "User account names are limited to 20 characters…").
// eslint-disable-next-line no-control-regex -- control characters are what it refuses
const WINDOWS_USER = /^[^"/\\[\]:;|=,+*?<>@\x00-\x1f]{1,20}$/;

/** Throws INVALID_REQUEST unless `user` is a valid local account name. */
export function checkWindowsUserName(user: string): string {
  if (!WINDOWS_USER.test(user) || /^[. ]+$/.test(user) || user.endsWith(' ')) {
    throw new AgentOpError(
      ErrorCode.INVALID_REQUEST,
      'username is not a valid Windows account name (1-20 characters, none of "/\\[]:;|=,+*?<>@)',
    );
  }
  return user;
}

/**
 * `net user NAME PASSWORD`. net.exe takes an argument starting with "/" as an option and "*" as
 * "prompt", and splits its own command line, so such passwords, double quotes and control
 * characters are refused rather than passed on; 127 characters is net.exe's limit. The message
 * never contains the password. The argv is never logged (the handler logs the user only).
 */
export function netUserArgv(net: string, user: string, password: string): string[] {
  checkWindowsUserName(user);
  if (
    password.length === 0 ||
    password.length > 127 ||
    // eslint-disable-next-line no-control-regex -- control characters are what it refuses
    /[\x00-\x1f\x7f"]/.test(password) ||
    password.startsWith('/') ||
    password === '*'
  ) {
    throw new AgentOpError(
      ErrorCode.INVALID_REQUEST,
      'password must be 1-127 characters without control characters or double quotes, not "*", not starting with "/"',
    );
  }
  return [net, 'user', user, password];
}

/** Kills a process and all its descendants (the job-object substitute of the command line). */
export function taskkillTreeArgv(taskkill: string, pid: number): string[] {
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new AgentOpError(ErrorCode.INTERNAL, `not a process id: ${pid}`);
  }
  return [taskkill, '/PID', String(pid), '/T', '/F'];
}
