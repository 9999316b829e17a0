import { describe, expect, it } from '@jest/globals';
import { Code, ConnectError } from '@connectrpc/connect';
import { VmGuestErrorCode, VmGuestException } from '../guest-ops/vm-guest.exception.js';
import { toConnectError } from './connect-error.mapper.js';

describe('toConnectError', () => {
  it.each([
    [VmGuestErrorCode.INVALID_REQUEST, undefined, Code.InvalidArgument],
    [VmGuestErrorCode.VM_NOT_FOUND, undefined, Code.NotFound],
    [VmGuestErrorCode.AGENT_NOT_CONNECTED, undefined, Code.FailedPrecondition],
    [VmGuestErrorCode.AGENT_ERROR, 'PATH_NOT_ALLOWED', Code.PermissionDenied],
    [VmGuestErrorCode.AGENT_ERROR, 'OPERATION_BLOCKED', Code.PermissionDenied],
    [VmGuestErrorCode.AGENT_ERROR, 'PERMISSION_DENIED', Code.PermissionDenied],
    [VmGuestErrorCode.AGENT_ERROR, 'NOT_FOUND', Code.NotFound],
    [VmGuestErrorCode.AGENT_ERROR, 'INVALID_REQUEST', Code.InvalidArgument],
    [VmGuestErrorCode.AGENT_ERROR, 'USER_NOT_FOUND', Code.InvalidArgument],
    [VmGuestErrorCode.AGENT_ERROR, 'GROUP_NOT_FOUND', Code.InvalidArgument],
    [VmGuestErrorCode.AGENT_ERROR, 'TOO_LARGE', Code.ResourceExhausted],
    [VmGuestErrorCode.AGENT_ERROR, 'BUSY', Code.ResourceExhausted],
    [VmGuestErrorCode.AGENT_ERROR, 'EXEC_FAILED', Code.Unknown],
    // A Windows guest asked for run-as or a freeze: its OS cannot, asking again will not help.
    [VmGuestErrorCode.AGENT_ERROR, 'UNSUPPORTED', Code.FailedPrecondition],
    [VmGuestErrorCode.AGENT_ERROR, undefined, Code.Unknown],
    [VmGuestErrorCode.AGENT_TIMEOUT, undefined, Code.DeadlineExceeded],
    [VmGuestErrorCode.NODE_TIMEOUT, undefined, Code.DeadlineExceeded],
    [VmGuestErrorCode.NODE_UNAVAILABLE, undefined, Code.Unavailable],
  ])('should map %s (agent %s) to code %s', (code, agentCode, expected) => {
    const e = toConnectError(new VmGuestException(code, 'why', agentCode));
    expect(e.code).toBe(expected);
    expect(e.rawMessage).toContain('why');
  });

  it('should pass a ConnectError through unchanged', () => {
    const e = new ConnectError('bad', Code.InvalidArgument);
    expect(toConnectError(e)).toBe(e);
  });

  it('should hide internal messages', () => {
    expect(toConnectError(new Error('secret stack')).rawMessage).toBe('internal error');
    expect(
      toConnectError(new VmGuestException(VmGuestErrorCode.INTERNAL, 'secret')).rawMessage,
    ).toBe('internal error');
  });
});
