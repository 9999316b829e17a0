import { describe, expect, it } from '@jest/globals';
import {
  list,
  parseAmount,
  parseCommandLine,
  parseDuration,
  parseKeyValue,
  parseMode,
  parseRemotePath,
  parseTime,
  parseTimeoutSeconds,
  str,
  type ParsedCommand,
} from './args.js';
import { UsageError } from './errors.js';

function command(argv: string[]): ParsedCommand {
  const p = parseCommandLine(argv);
  if (p.kind !== 'command') {
    throw new Error(`not a command: ${JSON.stringify(p)}`);
  }
  return p.command;
}

describe('parseCommandLine', () => {
  it('should take global options before and after the command and the remote command after --', () => {
    const c = command([
      '--server',
      'http://cp:8080',
      'exec',
      '--json',
      'vm-1',
      '--user',
      'nobody',
      '-e',
      'A=1',
      '--env',
      'B=2',
      '--',
      'sh',
      '-c',
      'echo --json',
    ]);
    expect(c.name).toBe('exec');
    expect(c.positionals).toEqual(['vm-1']);
    expect(c.remote).toEqual(['sh', '-c', 'echo --json']);
    expect(str(c, 'server')).toBe('http://cp:8080');
    expect(str(c, 'user')).toBe('nobody');
    expect(c.values.json).toBe(true);
    expect(list(c, 'env')).toEqual(['A=1', 'B=2']);
  });

  it('should find a subcommand after options of its group and default vms to ls', () => {
    expect(command(['--token', 'lq_x', 'vm', 'show', 'vm-3']).name).toBe('vm show');
    expect(command(['vms']).name).toBe('vms ls');
    expect(command(['vms', 'list', '-p', 'demo']).name).toBe('vms ls');
    expect(str(command(['vms', '--project', 'demo', 'ls']), 'project')).toBe('demo');
    expect(command(['audit', 'ls', '--executions', '--since', '1h']).values.executions).toBe(true);
  });

  it('should take the words after the VM as the command when there is no --', () => {
    const c = command(['exec', 'vm-1', 'uptime']);
    expect([c.positionals, c.remote, c.dashdash]).toEqual([['vm-1'], ['uptime'], false]);
  });

  it('should point at -- when a remote command has options but no --', () => {
    expect(() => parseCommandLine(['exec', 'vm-1', 'ls', '-la'])).toThrow(
      /unknown option -l: put the remote command after --/,
    );
  });

  it('should answer help for --help, -h and help TOPIC, and version for --version', () => {
    expect(parseCommandLine([])).toEqual({ kind: 'help' });
    expect(parseCommandLine(['--help'])).toEqual({ kind: 'help' });
    expect(parseCommandLine(['exec', '-h'])).toEqual({ kind: 'help', topic: 'exec' });
    expect(parseCommandLine(['vm', '--help'])).toEqual({ kind: 'help', topic: 'vm' });
    expect(parseCommandLine(['help', 'audit', 'ls'])).toEqual({ kind: 'help', topic: 'audit ls' });
    expect(parseCommandLine(['--version'])).toEqual({ kind: 'version' });
  });

  it('should refuse unknown commands, options, missing and extra arguments with a UsageError', () => {
    const bad = [
      ['frobnicate'],
      ['vms', 'ls', '--bogus'],
      ['vm', 'show'],
      ['vm', 'explode', 'vm-1'],
      ['vm'],
      ['cp', 'a'],
      ['quiesce', 'vm-1', 'vm-2'],
      ['vms', 'ls', '--', 'x'],
    ];
    for (const argv of bad) {
      expect(() => parseCommandLine(argv)).toThrow(UsageError);
    }
  });
});

describe('parseDuration', () => {
  it.each([
    ['90', 90_000],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['2d', 172_800_000],
    ['250ms', 250],
    ['1.5h', 5_400_000],
  ])('should read %s as %i ms', (text, ms) => {
    expect(parseDuration(text, '--x')).toBe(ms);
  });

  it.each(['', 'h', '5 minutes', '1h-2m', '-5m', '1y'])('should refuse %j', (text) => {
    expect(() => parseDuration(text, '--x')).toThrow(/--x must be a duration/);
  });
});

describe('parseTime', () => {
  const now = new Date('2026-11-03T12:00:00Z');

  it('should read a duration as that long ago and an ISO time as itself', () => {
    expect(parseTime('1h', '--since', now).toISOString()).toBe('2026-11-03T11:00:00.000Z');
    expect(parseTime('2d', '--since', now).toISOString()).toBe('2026-11-01T12:00:00.000Z');
    expect(parseTime('2026-11-01T08:30:00Z', '--since', now).toISOString()).toBe(
      '2026-11-01T08:30:00.000Z',
    );
    expect(parseTime('2026-11-01', '--since', now).toISOString()).toBe('2026-11-01T00:00:00.000Z');
  });

  it('should refuse a bare number and an impossible date', () => {
    expect(() => parseTime('30', '--since', now)).toThrow(/needs a unit/);
    expect(() => parseTime('2026-13-45', '--since', now)).toThrow(/not a valid ISO 8601/);
  });
});

describe('small parsers', () => {
  it('should read timeouts in whole seconds within the API bounds', () => {
    expect([
      parseTimeoutSeconds('30'),
      parseTimeoutSeconds('1.2s'),
      parseTimeoutSeconds('2h'),
    ]).toEqual([30, 2, 7200]);
    expect(() => parseTimeoutSeconds('25h')).toThrow(UsageError);
    expect(() => parseTimeoutSeconds('0')).toThrow(UsageError);
  });

  it('should read amounts as numbers or percentages', () => {
    expect(parseAmount('10', '--max-concurrency', 1)).toBe(10);
    expect(parseAmount('10%', '--max-concurrency', 1)).toBe('10%');
    expect(parseAmount('0', '--max-errors', 0)).toBe(0);
    for (const bad of ['0', '-1', '150%', 'ten', '1.5']) {
      expect(() => parseAmount(bad, '--max-concurrency', 1)).toThrow(UsageError);
    }
  });

  it('should split KEY=VALUE at the first =', () => {
    expect(parseKeyValue('A=b=c', '--env')).toEqual(['A', 'b=c']);
    expect(parseKeyValue('A=', '--env')).toEqual(['A', '']);
    expect(() => parseKeyValue('=x', '--env')).toThrow(/--env must be KEY=VALUE/);
  });

  it('should tell VM:/path from local paths', () => {
    expect(parseRemotePath('vm-1:/tmp/x')).toEqual({ vm: 'vm-1', path: '/tmp/x' });
    expect(parseRemotePath('./vm-1:/tmp/x')).toBeUndefined();
    expect(parseRemotePath('vm-1:relative')).toBeUndefined();
    expect(parseRemotePath('/abs/path')).toBeUndefined();
  });

  it('should accept octal modes only', () => {
    expect(parseMode('0644')).toBe('0644');
    expect(parseMode('755')).toBe('755');
    expect(() => parseMode('0948')).toThrow(UsageError);
    expect(() => parseMode('rw-r--r--')).toThrow(UsageError);
  });
});
