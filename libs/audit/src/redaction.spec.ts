import { describe, expect, it } from '@jest/globals';
import { REDACTED, pgSafe, redactExecute, redactParams, sha256Hex } from './redaction.js';

describe('redaction', () => {
  it('should redact env values marked secret or named like secrets, and hash stdin', () => {
    const stdin = new TextEncoder().encode('my stdin secret');
    const out = redactExecute({
      command: 'deploy',
      env: { DB_PASSWORD: 'p1', GITHUB_TOKEN: 't', PLAIN: 'marked', HOME: '/root' },
      secretEnv: ['PLAIN'],
      stdin,
      runAsUser: 'deploy',
    });
    expect(out).toEqual({
      command: 'deploy',
      env: { DB_PASSWORD: REDACTED, GITHUB_TOKEN: REDACTED, PLAIN: REDACTED, HOME: '/root' },
      stdin: { sha256: sha256Hex(stdin), bytes: stdin.length },
      run_as_user: 'deploy',
    });
  });

  it('should redact password-like fields at any depth and keep the rest', () => {
    expect(
      redactParams({ username: 'bob', password: 'x', nested: { crypted_hash: '$6$', keep: 1 } }),
    ).toEqual({ username: 'bob', password: REDACTED, nested: { crypted_hash: REDACTED, keep: 1 } });
  });

  it('should make NUL characters storable', () => {
    expect(pgSafe('a\u0000b')).toBe('a\uFFFDb');
  });
});
