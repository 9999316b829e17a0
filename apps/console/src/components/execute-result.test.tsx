import { cleanup, render, screen, within } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditExecutionView, ExecuteResultView as ExecuteResult } from '@lq/api';
import {
  ExecuteResultView,
  fromExecuteResult,
  fromExecution,
  outcomeOf,
  truncationNotice,
} from './execute-result';

afterEach(cleanup);

const result = (over: Partial<ExecuteResult> = {}): ExecuteResult => ({
  vm_id: 'vm-1',
  exit_code: 0,
  signal: null,
  timed_out: false,
  stdout: 'Linux vm 6.1.0 x86_64 GNU/Linux\n',
  stderr: '',
  stdout_truncated: false,
  stderr_truncated: false,
  stdout_total_bytes: 32,
  stderr_total_bytes: 0,
  duration_ms: 12,
  ...over,
});

describe('outcomeOf', () => {
  it('should say success, a failing exit code, a timeout and a signal apart', () => {
    expect(outcomeOf(fromExecuteResult(result()))).toEqual({
      tone: 'ok',
      text: 'Exit code 0 (success)',
    });
    expect(outcomeOf(fromExecuteResult(result({ exit_code: 2 })))).toEqual({
      tone: 'warn',
      text: 'Exit code 2',
    });
    expect(outcomeOf(fromExecuteResult(result({ exit_code: null, timed_out: true }))).text).toBe(
      'Timed out: the command was killed',
    );
    expect(outcomeOf(fromExecuteResult(result({ exit_code: null, signal: 'SIGKILL' }))).text).toBe(
      'Killed by SIGKILL',
    );
  });

  it('should show a history row without outcome as pending and a failed one with its error', () => {
    const row = {
      status: null,
      exit_code: null,
      error: null,
      stdout: null,
      stderr: null,
    } as unknown as AuditExecutionView;
    expect(outcomeOf(fromExecution(row)).tone).toBe('pending');
    expect(
      outcomeOf(fromExecution({ ...row, status: 'AGENT_NOT_CONNECTED', error: 'agent gone' })).text,
    ).toBe('Failed: agent gone');
  });
});

describe('truncationNotice', () => {
  it('should say how much of the output is shown when it was cut', () => {
    expect(truncationNotice('stdout', true, 'x'.repeat(1024), 5 * 1024 * 1024)).toBe(
      'stdout was cut: 1.0 KiB of 5.0 MiB shown',
    );
    expect(truncationNotice('stderr', true, 'abc', null)).toBe(
      'stderr was cut to the capture limit',
    );
    expect(truncationNotice('stdout', false, 'abc', 3)).toBeUndefined();
  });
});

describe('ExecuteResultView', () => {
  it('should show stdout, an empty stderr, the exit code and the duration', () => {
    render(<ExecuteResultView output={fromExecuteResult(result())} />);
    expect(
      within(screen.getByRole('region', { name: 'stdout' })).getByText(/Linux vm/),
    ).toBeTruthy();
    expect(
      within(screen.getByRole('region', { name: 'stderr' })).getByText('(empty)'),
    ).toBeTruthy();
    expect(screen.getByText('Exit code 0 (success)')).toBeTruthy();
    expect(screen.getByText('Duration 12 ms')).toBeTruthy();
    expect(screen.queryByRole('note')).toBeNull();
  });

  it('should warn under each stream that was truncated', () => {
    render(
      <ExecuteResultView
        output={fromExecuteResult(
          result({
            stdout: 'a'.repeat(2048),
            stdout_truncated: true,
            stdout_total_bytes: 10_000_000,
          }),
        )}
      />,
    );
    const notes = screen.getAllByRole('note');
    expect(notes.map((n) => n.textContent)).toEqual(['stdout was cut: 2.0 KiB of 9.5 MiB shown']);
  });
});
