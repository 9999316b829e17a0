// Issue 21 item 4: flag errors in lqctl's own words and "did you mean" for verbs and flags.
import { describe, expect, it } from '@jest/globals';
import { didYouMean, parseCommandLine } from './args.js';
import { parseSelector } from './commands/vms.command.js';

function error(argv: string[]): string {
  try {
    parseCommandLine(argv);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`${argv.join(' ')} parsed`);
}

describe('lqctl’s own words for bad command lines', () => {
  it('should suggest the closest verb, subcommand and option', () => {
    expect(error(['exce', 'vm-1', '--', 'id'])).toBe('unknown command exce (did you mean exec?)');
    expect(error(['runs', 'shwo', 'x'])).toBe('unknown subcommand runs shwo (did you mean show?)');
    expect(error(['vms', 'ls', '--projet', 'p'])).toBe(
      'unknown option --projet (did you mean --project?)',
    );
    expect(error(['exec', 'vm-1', '--timout', '5', '--', 'id'])).toBe(
      'unknown option --timout (did you mean --timeout?)',
    );
    expect(error(['frobnicate'])).toBe('unknown command frobnicate');
    expect(didYouMean('--x', ['--project'])).toBe('');
  });

  it('should say what is wrong with an option’s value instead of Node’s parser text', () => {
    expect(error(['exec', 'vm-1', '--timeout', '-1', '--', 'id'])).toBe(
      '--timeout must not be negative (got -1)',
    );
    expect(error(['vms', 'ls', '--project'])).toBe('--project needs a value');
    expect(error(['vms', 'ls', '--project', '--json'])).toBe(
      '--project needs a value, and --json looks like an option (write --project=--json if it is the value)',
    );
    expect(error(['vms', 'ls', '--json=yes'])).toBe('--json takes no value');
  });

  it('should read exec ls|show|logs as history, and exec on a VM named ls after --', () => {
    const ls = parseCommandLine(['exec', 'ls', '--state', 'failed']);
    expect(ls.kind === 'command' && ls.command.name).toBe('exec ls');
    const onVm = parseCommandLine(['exec', 'ls', '--', 'id']);
    expect(onVm.kind === 'command' && [onVm.command.name, onVm.command.positionals]).toEqual([
      'exec',
      ['ls'],
    ]);
  });
});

describe('label selectors (vms ls -l)', () => {
  const labels = { env: 'prod', role: 'db' };
  it('should match equal, not equal, has and has not', () => {
    expect(parseSelector('env=prod')(labels)).toBe(true);
    expect(parseSelector('env=prod,role!=db')(labels)).toBe(false);
    expect(parseSelector('role,!legacy')(labels)).toBe(true);
    expect(parseSelector('!role')(labels)).toBe(false);
    expect(parseSelector('team=x')(labels)).toBe(false);
  });

  it('should refuse a malformed selector naming it', () => {
    expect(() => parseSelector('env=prod,,')).toThrow(/-l must be labels like/);
    expect(() => parseSelector('!env=prod')).toThrow(/"!env=prod"/);
  });
});
