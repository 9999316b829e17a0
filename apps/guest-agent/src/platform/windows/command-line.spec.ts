import { describe, expect, it } from '@jest/globals';
import { ErrorCode, ExecuteRequestSchema } from '@lq/proto';
import { create } from '@bufbuild/protobuf';
import { cmdCommandLine, commandLine, parseCommandLine, quoteArg } from './command-line.js';
import { planWindowsSpawn, refuseWindowsRunAs } from './windows-process-runner.js';

// Expected lines are those of Microsoft's table in "Parsing C command-line arguments" and of
// what libuv's quote_cmd_arg (Node's spawn on Windows) produces for the same argv.
const CASES: [string[], string][] = [
  [['prog', 'a', 'b'], 'prog a b'],
  [['prog', 'a b'], 'prog "a b"'],
  [['prog', ''], 'prog ""'],
  [['prog', 'a"b'], 'prog "a\\"b"'],
  [['prog', 'a\\b'], 'prog a\\b'],
  [['prog', 'a\\\\b c'], 'prog "a\\\\b c"'],
  [['prog', 'a\\"b'], 'prog "a\\\\\\"b"'],
  [['prog', 'dir\\'], 'prog dir\\'],
  [['prog', 'dir with space\\'], 'prog "dir with space\\\\"'],
  [['prog', '"'], 'prog "\\""'],
  [['prog', 'tab\there'], 'prog "tab\there"'],
  [['C:\\Program Files\\Tool\\tool.exe', '/x'], '"C:\\Program Files\\Tool\\tool.exe" /x'],
];

describe('Windows command lines', () => {
  it.each(CASES)('should quote %j as the MSVCRT reads it back', (argv, line) => {
    expect(commandLine(argv)).toBe(line);
    expect(parseCommandLine(line)).toEqual(argv);
  });

  it('should read back every argument unchanged for awkward input', () => {
    const awkward = ['a', ' ', '\\', '\\\\', '"\\"', 'x\\\\"y', 'a b\\', '%PATH%', '^&|<>', 'é ü'];
    expect(parseCommandLine(commandLine(['p', ...awkward]))).toEqual(['p', ...awkward]);
  });

  it('should leave an argument without space or quote as it is', () => {
    expect(quoteArg('C:\\Windows\\System32\\cmd.exe')).toBe('C:\\Windows\\System32\\cmd.exe');
  });

  it('should refuse NUL in an argument', () => {
    expect(() => commandLine(['p', 'a\0b'])).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_REQUEST }),
    );
  });

  it('should run command under cmd.exe /d /s /c with the command verbatim', () => {
    expect(cmdCommandLine('C:\\Windows\\System32\\cmd.exe', 'echo "a b" & dir C:\\')).toBe(
      'C:\\Windows\\System32\\cmd.exe /d /s /c "echo "a b" & dir C:\\"',
    );
  });

  it('should refuse a multi-line command for cmd.exe', () => {
    expect(() => cmdCommandLine('cmd.exe', 'echo a\r\necho b')).toThrow(/one line/);
  });

  it('should plan argv as program plus quoted rest, for libuv to join verbatim', () => {
    const plan = planWindowsSpawn(
      create(ExecuteRequestSchema, { argv: ['C:\\Program Files\\app.exe', 'x y', 'z'] }),
      'C:\\Windows\\System32\\cmd.exe',
    );
    expect(plan).toEqual({
      file: 'C:\\Program Files\\app.exe',
      argv0: '"C:\\Program Files\\app.exe"',
      rest: '"x y" z',
      commandLine: '"C:\\Program Files\\app.exe" "x y" z',
      program: 'C:\\Program Files\\app.exe',
    });
    expect(`${plan.argv0} ${plan.rest}`).toBe(plan.commandLine);
  });

  it('should plan command through the configured cmd.exe', () => {
    const plan = planWindowsSpawn(
      create(ExecuteRequestSchema, { command: 'ver' }),
      'C:\\Windows\\System32\\cmd.exe',
    );
    expect(plan.file).toBe('C:\\Windows\\System32\\cmd.exe');
    expect(plan.rest).toBe('/d /s /c "ver"');
  });

  it('should refuse run-as with UNSUPPORTED naming the API it needs', () => {
    for (const fields of [
      { runAsUser: 'alice' },
      { runAsGroup: 'Users' },
      { includeSupplementaryGroups: true },
    ]) {
      expect(() =>
        refuseWindowsRunAs(create(ExecuteRequestSchema, { argv: ['x'], ...fields })),
      ).toThrow(
        expect.objectContaining({
          code: ErrorCode.UNSUPPORTED,
          message: expect.stringContaining('CreateProcessAsUser'),
        }),
      );
    }
    expect(() => refuseWindowsRunAs(create(ExecuteRequestSchema, { argv: ['x'] }))).not.toThrow();
  });
});
