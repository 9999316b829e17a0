import { describe, expect, it } from '@jest/globals';
import { parseCommandLine, type ParsedCommand } from '../args.js';
import { releasesTable, rolloutBody, versionsTable } from './agent.command.js';

function command(argv: string[]): ParsedCommand {
  const parsed = parseCommandLine(argv);
  if (parsed.kind !== 'command') {
    throw new Error(`not a command: ${argv.join(' ')}`);
  }
  return parsed.command;
}

describe('lqctl agent', () => {
  it('should parse a rollout with its target, canary and budget', () => {
    const cmd = command([
      'agent',
      'rollout',
      '--vms',
      'vm-1,vm-2',
      '--version',
      '0.2.0',
      '--canary',
      '2',
      '--max-concurrency',
      '20%',
      '--max-errors',
      '1',
    ]);
    expect(cmd.name).toBe('agent rollout');
    expect(rolloutBody(cmd)).toEqual({
      version: '0.2.0',
      target: { vm_ids: ['vm-1', 'vm-2'] },
      canary: 2,
      max_concurrency: '20%',
      max_errors: 1,
    });
    expect(() => rolloutBody(command(['agent', 'rollout', '--vms', 'a']))).toThrow(/--version/);
    expect(() =>
      rolloutBody(command(['agent', 'rollout', '--vms', 'a', '--version', '1', '--canary', 'x'])),
    ).toThrow(/--canary/);
  });

  it('should default to the fleet by version, and show outdated and latest', () => {
    expect(command(['agent']).name).toBe('agent versions');
    expect(
      versionsTable({
        latest: '0.2.0',
        versions: [{ version: '0.1.0', target: 'linux-amd64', vms: 3, outdated: true }],
      }),
    ).toContain('0.1.0    linux-amd64    3  outdated');
    expect(
      releasesTable({
        latest: '0.2.0',
        releases: [
          {
            version: '0.2.0',
            commit: 'abc',
            updatable: true,
            artifacts: [{ target: 'linux-amd64', file: 'f', sha256: '', size: 1, verified: true }],
          },
        ],
      }),
    ).toContain('0.2.0 (latest)');
  });
});
