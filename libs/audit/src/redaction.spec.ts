import { describe, expect, it } from '@jest/globals';
import {
  REDACTED,
  firstUnstorable,
  pgSafe,
  redactExecute,
  redactParams,
  sha256Hex,
  storableJson,
} from './redaction.js';

describe('redaction', () => {
  it('should keep only the names of env entries, and hash stdin', () => {
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
      env: { DB_PASSWORD: REDACTED, GITHUB_TOKEN: REDACTED, PLAIN: REDACTED, HOME: REDACTED },
      stdin: { sha256: sha256Hex(stdin), bytes: stdin.length },
      run_as_user: 'deploy',
    });
  });

  it('should redact password-like fields at any depth and keep the rest', () => {
    expect(
      redactParams({ username: 'bob', password: 'x', nested: { crypted_hash: '$6$', keep: 1 } }),
    ).toEqual({ username: 'bob', password: REDACTED, nested: { crypted_hash: REDACTED, keep: 1 } });
  });

  it('should make NUL characters and unpaired surrogates storable', () => {
    expect(pgSafe('a\u0000b')).toBe('a\uFFFDb');
    expect(pgSafe('x\ud800y\udc00z')).toBe('x\uFFFDy\uFFFDz');
    // A pair is one character: kept.
    expect(pgSafe('ok \ud83d\ude00')).toBe('ok \ud83d\ude00');
    expect(pgSafe('cut \ud83d')).toBe('cut \uFFFD');
  });

  it('should name where a value holds what PostgreSQL refuses, keys included', () => {
    expect(firstUnstorable({ params: { path: '/tmp/ok', argv: ['a', 'b'] } })).toBeUndefined();
    expect(firstUnstorable({ params: { argv: ['a', 'b\ud800'] } })).toBe('params.argv[1]');
    expect(firstUnstorable({ params: { env: { 'A\u0000': 'x' } } })).toBe(
      'params.env["A\\u0000"] (its name)',
    );
    expect(firstUnstorable({ params: { '\udfff': 1 } })).toMatch(/its name/);
  });

  it('should store keys and strings safely, and bytes only as their digest', () => {
    const data = new TextEncoder().encode('s3cret');
    expect(storableJson({ 'k\u0000': ['\ud800'], data, n: 1 })).toEqual({
      'k\uFFFD': ['\uFFFD'],
      data: { sha256: sha256Hex(data), bytes: 6 },
      n: 1,
    });
  });

  it('should keep a __proto__ key of parsed params as data, not as a prototype', () => {
    const parsed = JSON.parse('{"env":{"__proto__":{"x":"1"},"A":"2"}}') as unknown;
    const out = storableJson(parsed) as { env: Record<string, unknown> };
    expect(Object.keys(out.env)).toEqual(['__proto__', 'A']);
    expect(Object.getPrototypeOf(out.env)).toBe(Object.prototype);
    expect(JSON.stringify(out)).toBe('{"env":{"__proto__":{"x":"1"},"A":"2"}}');
  });
});
