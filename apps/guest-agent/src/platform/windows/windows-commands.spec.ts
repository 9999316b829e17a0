import { describe, expect, it } from '@jest/globals';
import { ErrorCode, ShutdownMode } from '@lq/proto';
import { commandLine } from './command-line.js';
import {
  DEFAULT_WINDOWS_TOOLS as T,
  checkWindowsUserName,
  netUserArgv,
  setClockArgv,
  shutdownArgv,
  taskkillTreeArgv,
  timeResyncArgv,
} from './windows-commands.js';

describe('Windows administrative command lines', () => {
  it('should power off and reboot through shutdown.exe at once, with a planned reason', () => {
    expect(commandLine(shutdownArgv(T.shutdown, ShutdownMode.POWEROFF))).toBe(
      'C:\\Windows\\System32\\shutdown.exe /s /t 0 /d p:0:0 /c "LimiQuantix guest agent: requested by the host"',
    );
    expect(shutdownArgv(T.shutdown, ShutdownMode.UNSPECIFIED)).toEqual(
      shutdownArgv(T.shutdown, ShutdownMode.POWEROFF),
    );
    expect(shutdownArgv(T.shutdown, ShutdownMode.REBOOT).slice(1, 4)).toEqual(['/r', '/t', '0']);
  });

  it('should refuse halt with UNSUPPORTED', () => {
    expect(() => shutdownArgv(T.shutdown, ShutdownMode.HALT)).toThrow(
      expect.objectContaining({ code: ErrorCode.UNSUPPORTED }),
    );
  });

  it('should resync through w32tm', () => {
    expect(commandLine(timeResyncArgv(T.w32tm))).toBe(
      'C:\\Windows\\System32\\w32tm.exe /resync /force',
    );
  });

  it('should set the clock from host time with only digits in the script', () => {
    const argv = setClockArgv(T.powershell, 1733385600123.4);
    expect(argv.slice(0, 4)).toEqual([T.powershell, '-NoProfile', '-NonInteractive', '-Command']);
    expect(argv[4]).toBe(
      'Set-Date -Date ([DateTimeOffset]::FromUnixTimeMilliseconds(1733385600123).LocalDateTime) | Out-Null',
    );
    expect(() => setClockArgv(T.powershell, Number.NaN)).toThrow(/out of range/);
    expect(() => setClockArgv(T.powershell, -1)).toThrow(/out of range/);
  });

  it('should build net user for a valid account and password', () => {
    expect(netUserArgv(T.net, 'Administrator', 'S3cret pass!')).toEqual([
      'C:\\Windows\\System32\\net.exe',
      'user',
      'Administrator',
      'S3cret pass!',
    ]);
    expect(commandLine(netUserArgv(T.net, 'svc-backup', 'p@ss w0rd'))).toBe(
      'C:\\Windows\\System32\\net.exe user svc-backup "p@ss w0rd"',
    );
  });

  it.each([
    ['', 'x'],
    ['a'.repeat(21), 'x'],
    ['bad/name', 'x'],
    ['bad"name', 'x'],
    ['dom\\user', 'x'],
    ['user@dom', 'x'],
    ['...', 'x'],
    ['trailing ', 'x'],
  ])('should refuse the user name %j', (user, password) => {
    expect(() => netUserArgv(T.net, user, password)).toThrow(
      expect.objectContaining({
        code: ErrorCode.INVALID_REQUEST,
        message: expect.stringMatching(/username/),
      }),
    );
  });

  it.each(['', '*', '/delete', 'a"b', 'line\nbreak', 'x'.repeat(128), 'nul\0'])(
    'should refuse the password %j without echoing it',
    (password) => {
      let message = '';
      try {
        netUserArgv(T.net, 'alice', password);
      } catch (err) {
        message = (err as Error).message;
        expect((err as { code: ErrorCode }).code).toBe(ErrorCode.INVALID_REQUEST);
      }
      expect(message).toMatch(/password must be/);
      if (password.length > 1) {
        expect(message).not.toContain(password);
      }
    },
  );

  it('should accept names with spaces, dots and dashes as Windows does', () => {
    expect(checkWindowsUserName('John Smith')).toBe('John Smith');
    expect(checkWindowsUserName('svc.sql-01')).toBe('svc.sql-01');
  });

  it('should kill a process tree through taskkill /T /F', () => {
    expect(taskkillTreeArgv(T.taskkill, 4242)).toEqual([
      'C:\\Windows\\System32\\taskkill.exe',
      '/PID',
      '4242',
      '/T',
      '/F',
    ]);
    expect(() => taskkillTreeArgv(T.taskkill, 0)).toThrow(/process id/);
  });
});
