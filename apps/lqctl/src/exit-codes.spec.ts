import { describe, expect, it } from '@jest/globals';
import { ApiError, NotOfferedError, UnreachableError, UsageError } from './errors.js';
import { Exit, describeFailure, exitCodeOfExecution, signalNumber } from './exit-codes.js';

describe('exitCodeOfExecution', () => {
  it.each([
    [{ status: 'succeeded', exit_code: 0, signal: null }, 0],
    [{ status: 'failed', exit_code: 7, signal: null }, 7],
    [{ status: 'failed', exit_code: null, signal: 'SIGKILL' }, 137],
    [{ status: 'failed', exit_code: null, signal: 'SIGTERM' }, 143],
    [{ status: 'timed_out', exit_code: null, signal: 'SIGKILL' }, 124],
    [{ status: 'cancelled', exit_code: null, signal: 'SIGTERM' }, 130],
    [{ status: 'agent_lost', exit_code: null, signal: null }, 255],
    [{ status: 'failed', exit_code: null, signal: null }, 255],
    [{ status: 'failed', exit_code: null, signal: 'SIGNOPE' }, 255],
  ])('should map %j to exit code %i', (view, code) => {
    expect(exitCodeOfExecution(view)).toBe(code);
  });

  it('should read signal names with or without SIG and as numbers', () => {
    expect([signalNumber('SIGINT'), signalNumber('hup'), signalNumber('9')]).toEqual([2, 1, 9]);
    expect(signalNumber('SIGWHAT')).toBeUndefined();
  });
});

describe('describeFailure', () => {
  it('should tell the user to sign in when the API answers 401', () => {
    const f = describeFailure(new ApiError(401, 'UNAUTHENTICATED', 'API key lq_x was revoked'));
    expect(f.exitCode).toBe(Exit.UNAUTHENTICATED);
    expect(f.message).toMatch(/^not signed in or key revoked: run lqctl login/);
    expect(f.message).toContain('lq_x was revoked');
  });

  it('should name the missing permission when the API answers 403', () => {
    const f = describeFailure(
      new ApiError(403, 'PERMISSION_DENIED', 'guest.exec is needed on project a', 'guest.exec'),
    );
    expect(f).toEqual({
      exitCode: Exit.DENIED,
      message:
        'permission denied: the guest.exec permission is missing: guest.exec is needed on project a',
    });
  });

  it('should use the API message and code for other errors', () => {
    expect(
      describeFailure(new ApiError(409, 'AGENT_NOT_CONNECTED', 'agent is connecting')),
    ).toEqual({ exitCode: Exit.FAILED, message: 'agent is connecting (409 AGENT_NOT_CONNECTED)' });
  });

  it('should give 2 to usage errors and operations not offered, 3 to an unreachable server', () => {
    expect(describeFailure(new UsageError('bad')).exitCode).toBe(2);
    expect(describeFailure(new NotOfferedError('no quiesce')).exitCode).toBe(2);
    const u = describeFailure(new UnreachableError('http://x:1', 'ECONNREFUSED'));
    expect(u.exitCode).toBe(3);
    expect(u.message).toContain('LQ_SERVER');
  });
});
