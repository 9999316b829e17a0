import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { COMMANDS } from '../args.js';
import { usageOf } from '../usage.js';
import { bashCompletion, fishCompletion, zshCompletion } from './completion.command.js';

/** What the bash completion offers for `lqctl WORDS…` (the last word is the one completed). */
function complete(words: string[]): string[] {
  const line = ['lqctl', ...words];
  const script = `${bashCompletion()}
COMP_WORDS=(${line.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${line.length - 1}
_lqctl
printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .sort();
}

describe('lqctl completion', () => {
  it('should source cleanly in bash and register the completion', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lqctl-completion-'));
    try {
      const file = join(dir, 'lqctl.bash');
      writeFileSync(file, bashCompletion());
      // set -eu: any failing command or unset variable while sourcing fails the test.
      const out = execFileSync(
        'bash',
        ['--norc', '--noprofile', '-c', `set -eu; source '${file}'; complete -p lqctl`],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      expect(out.trim()).toBe('complete -F _lqctl lqctl');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should complete commands, subcommands and each command’s options', () => {
    expect(complete(['ex'])).toEqual(['exec']);
    expect(complete(['exec', 'l'])).toEqual(['logs', 'ls']);
    expect(complete(['runs', ''])).toEqual(['ls', 'show']);
    expect(complete(['exec', 'ls', '--st'])).toEqual(['--state']);
    expect(complete(['vms', 'ls', '--sel'])).toEqual(['--selector']);
    expect(complete(['run', '--dr'])).toEqual(['--dry-run']);
    expect(complete(['--ser'])).toEqual(['--server']);
  });

  it('should source in zsh and fish syntax where those shells exist', () => {
    expect(zshCompletion()).toContain('bashcompinit');
    expect(fishCompletion()).toContain("complete -c lqctl -n '__fish_use_subcommand' -a '");
    for (const shell of ['zsh', 'fish'] as const) {
      try {
        execFileSync(shell, shell === 'zsh' ? ['-n'] : ['--no-execute'], {
          input: shell === 'zsh' ? zshCompletion() : fishCompletion(),
          stdio: ['pipe', 'ignore', 'pipe'],
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw err;
        }
      }
    }
  });

  it('should have help for every command', () => {
    for (const c of COMMANDS) {
      expect([c.name, usageOf(c.name) !== undefined]).toEqual([c.name, true]);
    }
  });
});
