import { describe, expect, it } from '@jest/globals';
import { Code } from '@connectrpc/connect';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { toConnectError } from './connect-error.mapper.js';

describe('toConnectError', () => {
  it.each([
    [VmGuestErrorCode.INVALID_REQUEST, undefined, Code.InvalidArgument],
    [VmGuestErrorCode.VM_NOT_FOUND, undefined, Code.NotFound],
    [VmGuestErrorCode.AGENT_NOT_CONNECTED, undefined, Code.FailedPrecondition],
    [VmGuestErrorCode.AGENT_ERROR, 'PATH_NOT_ALLOWED', Code.PermissionDenied],
    [VmGuestErrorCode.AGENT_ERROR, 'EXEC_FAILED', Code.Unknown],
    [VmGuestErrorCode.AGENT_TIMEOUT, undefined, Code.DeadlineExceeded],
    [VmGuestErrorCode.NODE_TIMEOUT, undefined, Code.DeadlineExceeded],
    [VmGuestErrorCode.NODE_UNAVAILABLE, undefined, Code.Unavailable],
  ])('should map %s (agent %s) to code %s', (code, agentCode, expected) => {
    const e = toConnectError(new VmGuestException(code, 'why', agentCode));
    expect(e.code).toBe(expected);
    expect(e.rawMessage).toContain('why');
  });

  it('should hide internal messages', () => {
    expect(toConnectError(new Error('secret stack')).rawMessage).toBe('internal error');
    expect(
      toConnectError(new VmGuestException(VmGuestErrorCode.INTERNAL, 'secret')).rawMessage,
    ).toBe('internal error');
  });
});
