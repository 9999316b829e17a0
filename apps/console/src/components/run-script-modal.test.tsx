import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../api/client';
import type { Session } from '../api/session';
import { RunScriptModal, executeBody, formProblem, type LastRun } from './run-script-modal';

afterEach(cleanup);

const form = { command: 'id', runAsUser: '', runAsGroup: '', timeoutSeconds: 30 };

describe('formProblem', () => {
  it('should ask for a command, a sane timeout, and a non-root user when the role says so', () => {
    expect(formProblem({ ...form, command: '  ' }, { nonRootOnly: false })).toMatch(
      /Enter a command/,
    );
    expect(formProblem({ ...form, timeoutSeconds: 0 }, { nonRootOnly: false })).toMatch(/timeout/);
    expect(formProblem(form, { nonRootOnly: true })).toMatch(/non-root/);
    expect(formProblem({ ...form, runAsUser: 'root' }, { nonRootOnly: true })).toMatch(/non-root/);
    expect(formProblem({ ...form, runAsUser: 'app' }, { nonRootOnly: true })).toBeUndefined();
    expect(
      formProblem({ ...form, runAsUser: 'x' }, { nonRootOnly: false, users: ['deploy'] }),
    ).toBe('Your role lets you run commands only as deploy.');
  });
});

describe('executeBody', () => {
  it('should send only the fields given, trimmed', () => {
    expect(executeBody({ ...form, runAsUser: ' app ', runAsGroup: '' })).toEqual({
      command: 'id',
      timeout_seconds: 30,
      run_as_user: 'app',
    });
  });
});

function apiAnswering(status: number, body: unknown, seen: Array<{ url: string; body: unknown }>) {
  const store = { value: { method: 'api_key', accessToken: 'k' } as Session | undefined };
  return new ApiClient(
    { get: () => store.value, set: (s) => (store.value = s) },
    () => undefined,
    (input, init) => {
      seen.push({
        url: input instanceof Request ? input.url : input.toString(),
        body: JSON.parse(init?.body as string),
      });
      return Promise.resolve(new Response(JSON.stringify(body), { status }));
    },
  );
}

describe('RunScriptModal', () => {
  it('should execute the script, show its output and hand the result to the page', async () => {
    const seen: Array<{ url: string; body: unknown }> = [];
    const api = apiAnswering(
      200,
      {
        vm_id: 'vm-1',
        exit_code: 0,
        signal: null,
        timed_out: false,
        stdout: 'Linux vm-1\n',
        stderr: '',
        stdout_truncated: false,
        stderr_truncated: false,
        stdout_total_bytes: 11,
        stderr_total_bytes: 0,
        duration_ms: 7,
      },
      seen,
    );
    const onResult = vi.fn<(run: LastRun) => void>();
    render(
      <RunScriptModal
        api={api}
        vmId="vm-1"
        limits={{ nonRootOnly: false }}
        onClose={() => undefined}
        onResult={onResult}
      />,
    );
    const execute = screen.getByRole<HTMLButtonElement>('button', { name: 'Execute' });
    expect(execute.disabled).toBe(true);
    fireEvent.change(screen.getByLabelText('Command or script'), { target: { value: 'uname -a' } });
    fireEvent.change(screen.getByLabelText('Run as user'), { target: { value: 'nobody' } });
    fireEvent.click(execute);
    const stdout = await screen.findByRole('region', { name: 'stdout' });
    expect(within(stdout).getByText(/Linux vm-1/)).toBeTruthy();
    expect(seen).toEqual([
      {
        url: '/api/vms/vm-1/execute',
        body: { command: 'uname -a', timeout_seconds: 30, run_as_user: 'nobody' },
      },
    ]);
    expect(onResult).toHaveBeenCalledTimes(1);
    expect(onResult.mock.calls[0]![0].output.stdout).toBe('Linux vm-1\n');
  });

  it('should say in words that the agent is not connected, and keep the form', async () => {
    const api = apiAnswering(
      409,
      { code: 'AGENT_NOT_CONNECTED', message: 'vm-1 has no agent' },
      [],
    );
    render(
      <RunScriptModal
        api={api}
        vmId="vm-1"
        limits={{ nonRootOnly: false }}
        onClose={() => undefined}
        onResult={() => undefined}
        initial={{ ...form, command: 'true' }}
      />,
    );
    fireEvent.click(screen.getByRole('button', { name: 'Execute' }));
    await waitFor(() =>
      expect(screen.getByRole('alert').textContent).toMatch(/agent of this VM is not connected/),
    );
    expect(screen.getByLabelText<HTMLTextAreaElement>('Command or script').value).toBe('true');
  });
});
