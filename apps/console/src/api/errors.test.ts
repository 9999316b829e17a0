import { describe, expect, it } from 'vitest';
import { ApiError, NetworkError, SessionExpiredError, UserMessage, describeError } from './errors';

const api = (status: number, code: string, extra: Record<string, string> = {}) =>
  new ApiError(status, { code, message: `server says ${code}`, ...extra });

describe('describeError', () => {
  it('should name the missing permission and what it allows when the API answers 403', () => {
    const words = describeError(
      api(403, 'PERMISSION_DENIED', { permission: 'guest.exec', correlationId: 'c-1' }),
    );
    expect(words.title).toBe('Permission missing: “guest.exec” (run commands in guests).');
    expect(words.detail).toMatch(/administrator/);
    expect(words.reference).toBe('Reference c-1');
  });

  it('should say the agent is not connected when the API answers 409 AGENT_NOT_CONNECTED', () => {
    expect(describeError(api(409, 'AGENT_NOT_CONNECTED')).title).toBe(
      'The guest agent of this VM is not connected.',
    );
  });

  it('should say the node is unreachable for NODE_UNAVAILABLE and NODE_TIMEOUT', () => {
    expect(describeError(api(503, 'NODE_UNAVAILABLE')).title).toMatch(/node is unreachable/);
    expect(describeError(api(504, 'NODE_TIMEOUT')).title).toMatch(/node may be unreachable/);
  });

  it('should tell apart a timeout of the agent from one of the node', () => {
    expect(describeError(api(504, 'AGENT_TIMEOUT')).title).toMatch(/agent did not answer/);
  });

  it('should say nothing ran when the audit trail cannot be written', () => {
    expect(describeError(api(503, 'AUDIT_UNAVAILABLE')).title).toMatch(/nothing was run/);
  });

  it('should keep the agent code and the server message of an agent refusal', () => {
    const w = describeError(
      new ApiError(403, {
        code: 'AGENT_ERROR',
        agentCode: 'PATH_DENIED',
        message: 'outside roots',
      }),
    );
    expect([w.title, w.detail]).toEqual([
      'The guest agent refused or failed (PATH_DENIED).',
      'outside roots',
    ]);
  });

  it('should fall back on the status when the code is unknown', () => {
    expect(describeError(new ApiError(429, { message: 'busy' })).title).toMatch(/busy/);
    expect(describeError(new ApiError(418, { message: 'teapot' })).title).toBe(
      'Unexpected error (HTTP 418).',
    );
  });

  it('should describe network failures, ended sessions, own messages and plain errors', () => {
    expect(describeError(new NetworkError(new TypeError('Failed to fetch'))).title).toBe(
      'The control plane cannot be reached.',
    );
    expect(describeError(new SessionExpiredError()).title).toBe('Your session has ended.');
    expect(describeError(new UserMessage('Wrong username or password.')).title).toBe(
      'Wrong username or password.',
    );
    expect(describeError('boom')).toEqual({
      title: 'Something went wrong in the console.',
      detail: 'boom',
    });
  });
});
