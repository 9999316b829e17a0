import { describe, expect, it } from 'vitest';
import { ApiClient } from './client';
import { ApiError, SessionExpiredError } from './errors';
import type { Session, SessionStore } from './session';

function memoryStore(initial?: Session): SessionStore & { value?: Session } {
  const store = {
    value: initial,
    get: () => store.value,
    set: (s: Session | undefined) => {
      store.value = s;
    },
  };
  return store;
}

const urlOf = (input: RequestInfo | URL) =>
  input instanceof Request ? input.url : input.toString();

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

const pair = (n: number) => ({
  access_token: `access-${n}`,
  token_type: 'Bearer',
  expires_in: 900,
  refresh_token: `refresh-${n}`,
  refresh_expires_in: 3600,
});

describe('ApiClient', () => {
  it('should refresh an access token that is about to expire, once, before the request', async () => {
    const now = 1_000_000;
    const store = memoryStore({
      method: 'password',
      accessToken: 'access-0',
      refreshToken: 'refresh-0',
      expiresAt: now + 10_000,
    });
    const calls: string[] = [];
    const client = new ApiClient(
      store,
      () => undefined,
      (input, init) => {
        const auth = new Headers(init?.headers).get('Authorization');
        calls.push(`${urlOf(input)} ${auth ?? (init?.body as string)}`);
        return Promise.resolve(
          urlOf(input) === '/api/auth/refresh' ? json(200, pair(1)) : json(200, { ok: 1 }),
        );
      },
      () => now,
    );
    await Promise.all([client.json('/api/a'), client.json('/api/b')]);
    expect(calls).toEqual([
      '/api/auth/refresh {"refresh_token":"refresh-0"}',
      '/api/a Bearer access-1',
      '/api/b Bearer access-1',
    ]);
    expect(store.value).toMatchObject({ accessToken: 'access-1', expiresAt: now + 900_000 });
  });

  it('should refresh and retry once when a request answers 401', async () => {
    const store = memoryStore({
      method: 'password',
      accessToken: 'old',
      refreshToken: 'r',
      expiresAt: Date.now() + 600_000,
    });
    const seen: string[] = [];
    const client = new ApiClient(
      store,
      () => undefined,
      (input, init) => {
        const auth = new Headers(init?.headers).get('Authorization') ?? '';
        seen.push(`${urlOf(input)} ${auth}`);
        if (urlOf(input) === '/api/auth/refresh') {
          return Promise.resolve(json(200, pair(2)));
        }
        return Promise.resolve(
          auth === 'Bearer old' ? json(401, { code: 'UNAUTHENTICATED' }) : json(200, [1]),
        );
      },
    );
    expect(await client.json('/api/vms')).toEqual([1]);
    expect(seen).toEqual(['/api/vms Bearer old', '/api/auth/refresh ', '/api/vms Bearer access-2']);
  });

  it('should sign out when the refresh token is refused', async () => {
    let signedOut = 0;
    const store = memoryStore({
      method: 'password',
      accessToken: 'a',
      refreshToken: 'r',
      expiresAt: 0,
    });
    const client = new ApiClient(
      store,
      () => (signedOut += 1),
      () => Promise.resolve(json(401, { code: 'UNAUTHENTICATED', message: 'used' })),
    );
    await expect(client.json('/api/vms')).rejects.toBeInstanceOf(SessionExpiredError);
    expect([store.value, signedOut]).toEqual([undefined, 1]);
  });

  it('should sign out an API key the server no longer accepts, without a refresh', async () => {
    const store = memoryStore({ method: 'api_key', accessToken: 'lq_x_y' });
    const client = new ApiClient(
      store,
      () => undefined,
      () => Promise.resolve(json(401, { code: 'UNAUTHENTICATED', message: 'revoked' })),
    );
    const err = await client.json('/api/vms').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(store.value).toBeUndefined();
  });

  it('should carry the permission of a 403 body into the ApiError', async () => {
    const client = new ApiClient(
      memoryStore({ method: 'api_key', accessToken: 'k' }),
      () => undefined,
      () =>
        Promise.resolve(
          json(403, { code: 'PERMISSION_DENIED', permission: 'guest.exec', message: 'no' }),
        ),
    );
    const err = (await client.post('/api/vms/v/execute', {}).catch((e: unknown) => e)) as ApiError;
    expect([err.status, err.code, err.permission]).toEqual([
      403,
      'PERMISSION_DENIED',
      'guest.exec',
    ]);
  });
});
