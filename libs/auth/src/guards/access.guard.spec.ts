import { describe, expect, it } from '@jest/globals';
import { bearerTokenOf } from './access.guard.js';

const req = (authorization?: string, body?: unknown, query?: unknown) =>
  ({ headers: authorization === undefined ? {} : { authorization }, body, query }) as Parameters<
    typeof bearerTokenOf
  >[0];

// The rules passport-http-bearer applied while it read the REST API's tokens.
describe('bearerTokenOf', () => {
  it('should read the token of a Bearer header, whatever the case of the scheme', () => {
    expect(bearerTokenOf(req('Bearer lq_abc'))).toBe('lq_abc');
    expect(bearerTokenOf(req('bearer eyJ.x.y'))).toBe('eyJ.x.y');
  });

  it('should find none when there is no header, another scheme, or not two words', () => {
    expect(bearerTokenOf(req())).toBeUndefined();
    expect(bearerTokenOf(req('Basic dXNlcjpwdw=='))).toBeUndefined();
    expect(bearerTokenOf(req('Bearer'))).toBeUndefined();
    expect(bearerTokenOf(req('Bearer a b'))).toBeUndefined();
    expect(bearerTokenOf(req('Bearer  a'))).toBeUndefined();
    expect(bearerTokenOf(req('Bearer '))).toBeUndefined();
  });

  it('should take an access_token field alone, and none when a token comes twice or is not text', () => {
    expect(bearerTokenOf(req(undefined, { access_token: 't1' }))).toBe('t1');
    expect(bearerTokenOf(req(undefined, undefined, { access_token: 't2' }))).toBe('t2');
    expect(bearerTokenOf(req('Bearer t', { access_token: 't1' }))).toBeUndefined();
    expect(
      bearerTokenOf(req(undefined, { access_token: 't1' }, { access_token: 't2' })),
    ).toBeUndefined();
    expect(bearerTokenOf(req(undefined, undefined, { access_token: ['a', 'b'] }))).toBeUndefined();
  });
});
