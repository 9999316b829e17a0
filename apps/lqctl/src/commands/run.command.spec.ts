import { describe, expect, it } from '@jest/globals';
import { parseCommandLine, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import type { RunStatus, RunView } from '@lq/api';
import { runBody, runExitCode, runTable } from './run.command.js';
import { executeBody } from './exec.command.js';

function command(argv: string[]): ParsedCommand {
  const p = parseCommandLine(argv);
  if (p.kind !== 'command') {
    throw new Error('not a command');
  }
  return p.command;
}

describe('run and exec request bodies', () => {
  it('should build a run over labels with pace limits and the execute fields', () => {
    const body = runBody(
      command([
        'run',
        '--target',
        'env=prod,role=db',
        '--max-concurrency',
        '10%',
        '--max-errors',
        '2',
        '--timeout',
        '5m',
        '-u',
        'deploy',
        '--',
        'apt-get',
        'upgrade',
        '-y',
      ]),
    );
    expect(body).toEqual({
      argv: ['apt-get', 'upgrade', '-y'],
      target: { labels: 'env=prod,role=db' },
      max_concurrency: '10%',
      max_errors: 2,
      timeout_seconds: 300,
      run_as_user: 'deploy',
    });
  });

  it('should take --vms as a list and --project as a project', () => {
    expect(runBody(command(['run', '--vms', 'vm-1, vm-2,', '--', 'true'])).target).toEqual({
      vm_ids: ['vm-1', 'vm-2'],
    });
    expect(runBody(command(['run', '-p', 'demo', '--', 'true'])).target).toEqual({
      project: 'demo',
    });
  });

  it('should refuse no target, two targets and a missing command', () => {
    expect(() => runBody(command(['run', '--', 'true']))).toThrow(/needs one target/);
    expect(() => runBody(command(['run', '--vms', 'a', '-p', 'x', '--', 'true']))).toThrow(
      UsageError,
    );
    expect(() => runBody(command(['run', '--vms', 'a']))).toThrow(/needs a command after --/);
  });

  it('should send --shell commands as one command line and --env as an object', () => {
    expect(
      executeBody(
        command([
          'exec',
          'vm-1',
          '--shell',
          '-e',
          'A=1',
          '--cwd',
          '/srv',
          '--',
          'echo',
          '$A',
          '|',
          'wc',
        ]),
        'exec',
      ),
    ).toEqual({ command: 'echo $A | wc', env: { A: '1' }, cwd: '/srv' });
  });
});

describe('run results', () => {
  const view = (status: RunStatus, states: string[]): RunView => ({
    id: 'r1',
    actor: 'admin',
    status,
    target: { vm_ids: ['vm-1', 'vm-2', 'vm-10'] },
    command: 'true',
    argv: null,
    created_at: '2026-01-01T00:00:00.000Z',
    ended_at: null,
    max_concurrency: 2,
    max_errors: null,
    summary: {},
    vms: states.map((state, i) => ({
      vm_id: `vm-${[10, 2, 1][i] ?? i}`,
      state,
      execution_id: state === 'denied' ? null : `e${i}`,
      exit_code: state === 'succeeded' ? 0 : state === 'failed' ? 3 : null,
      error: state === 'denied' ? 'guest.exec is needed on project b' : null,
    })),
  });

  it('should exit 0 only when every VM succeeded, 130 when cancelled, else 1', () => {
    expect(runExitCode(view('succeeded', ['succeeded', 'succeeded']))).toBe(0);
    expect(runExitCode(view('failed', ['succeeded', 'failed']))).toBe(1);
    expect(runExitCode(view('succeeded', ['succeeded', 'denied']))).toBe(1);
    expect(runExitCode(view('cancelled', ['cancelled']))).toBe(130);
  });

  it('should list VMs in natural order with state, exit code and error', () => {
    expect(runTable(view('failed', ['succeeded', 'failed', 'denied']))).toBe(
      [
        'VM     STATE      EXIT  EXECUTION  ERROR',
        'vm-1   denied        -  -          guest.exec is needed on project b',
        'vm-2   failed        3  e1         -',
        'vm-10  succeeded     0  e0         -',
        '',
      ].join('\n'),
    );
  });
});
