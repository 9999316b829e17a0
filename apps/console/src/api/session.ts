import type { TokenPairView } from '@lq/api';

/** How the user signed in, and the credentials the console sends. Kept in sessionStorage. */
export type Session =
  | {
      method: 'password';
      accessToken: string;
      refreshToken: string;
      /** Epoch ms when the access token expires. */
      expiresAt: number;
    }
  | { method: 'api_key'; accessToken: string };

const KEY = 'lq.console.session';

export function sessionFromTokens(pair: TokenPairView, now = Date.now()): Session {
  return {
    method: 'password',
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token,
    expiresAt: now + pair.expires_in * 1000,
  };
}

/** An access token this close to its expiry is refreshed before use. */
export const REFRESH_MARGIN_MS = 30_000;

export function needsRefresh(session: Session, now = Date.now()): boolean {
  return session.method === 'password' && session.expiresAt - now < REFRESH_MARGIN_MS;
}

export interface SessionStore {
  get(): Session | undefined;
  set(session: Session | undefined): void;
}

/** The browser's sessionStorage: closed with the tab, never shared with other tabs. */
export function browserSessionStore(storage: Storage = window.sessionStorage): SessionStore {
  return {
    get() {
      const raw = storage.getItem(KEY);
      if (!raw) {
        return undefined;
      }
      try {
        const s = JSON.parse(raw) as Session;
        return typeof s.accessToken === 'string' ? s : undefined;
      } catch {
        return undefined;
      }
    },
    set(session) {
      if (session) {
        storage.setItem(KEY, JSON.stringify(session));
      } else {
        storage.removeItem(KEY);
      }
    },
  };
}
