import { ApiError, NetworkError, SessionExpiredError, errorFieldsOf } from './errors';
import { needsRefresh, sessionFromTokens, type SessionStore } from './session';
import type { TokenPairView } from '@lq/api';

type Fetch = typeof fetch;

/**
 * The REST client: adds the bearer token, refreshes an access token shortly before it expires
 * (and once more on a 401), and turns failures into ApiError / NetworkError /
 * SessionExpiredError. One refresh at a time: refresh tokens are single-use.
 */
export class ApiClient {
  private refreshing?: Promise<void>;

  constructor(
    readonly store: SessionStore,
    private readonly onSignedOut: () => void = () => undefined,
    private readonly fetchFn: Fetch = (input, init) => fetch(input, init),
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header for the current session, refreshed first when due. */
  async authorization(): Promise<string> {
    let session = this.store.get();
    if (!session) {
      throw new SessionExpiredError('not signed in');
    }
    if (needsRefresh(session, this.now())) {
      await this.refresh();
      session = this.store.get();
      if (!session) {
        throw new SessionExpiredError();
      }
    }
    return `Bearer ${session.accessToken}`;
  }

  /** A signed-in request; the Response of any status but 401 (after one refresh). */
  async raw(path: string, init: RequestInit = {}): Promise<Response> {
    const send = async () => {
      const headers = new Headers(init.headers);
      headers.set('Authorization', await this.authorization());
      try {
        return await this.fetchFn(path, { ...init, headers });
      } catch (err) {
        if ((err as Error)?.name === 'AbortError') {
          throw err;
        }
        throw new NetworkError(err);
      }
    };
    let res = await send();
    if (res.status === 401 && this.store.get()?.method === 'password') {
      await this.refresh();
      res = await send();
    }
    if (res.status === 401) {
      const err = await errorOf(res);
      this.signOut();
      throw err;
    }
    return res;
  }

  /** A signed-in request whose answer is JSON; ApiError on any non-2xx status. */
  async json<T>(path: string, init: RequestInit & { body?: BodyInit | null } = {}): Promise<T> {
    const res = await this.raw(path, init);
    if (!res.ok) {
      throw await errorOf(res);
    }
    return (await res.json()) as T;
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.json<T>(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
  }

  async login(username: string, password: string): Promise<void> {
    const pair = await this.publicPost<TokenPairView>('/api/auth/login', { username, password });
    this.store.set(sessionFromTokens(pair, this.now()));
  }

  useApiKey(key: string): void {
    this.store.set({ method: 'api_key', accessToken: key.trim() });
  }

  signOut(): void {
    this.store.set(undefined);
    this.onSignedOut();
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const session = this.store.get();
      if (session?.method !== 'password') {
        throw new SessionExpiredError();
      }
      try {
        const pair = await this.publicPost<TokenPairView>('/api/auth/refresh', {
          refresh_token: session.refreshToken,
        });
        this.store.set(sessionFromTokens(pair, this.now()));
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          this.signOut();
          throw new SessionExpiredError();
        }
        throw err;
      }
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async publicPost<T>(path: string, body: unknown): Promise<T> {
    let res: Response;
    try {
      res = await this.fetchFn(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    } catch (err) {
      throw new NetworkError(err);
    }
    if (!res.ok) {
      throw await errorOf(res);
    }
    return (await res.json()) as T;
  }
}

/** The ApiError a failed response stands for (its JSON body, or its status alone). */
export async function errorOf(res: Response): Promise<ApiError> {
  let body: unknown = {};
  try {
    const text = await res.text();
    body = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: a proxy's page
  }
  const fields = errorFieldsOf(body);
  return new ApiError(res.status, {
    ...fields,
    message: fields.message ?? `${res.status} ${res.statusText}`.trim(),
  });
}
