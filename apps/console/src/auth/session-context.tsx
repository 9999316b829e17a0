import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import type { ReactNode } from 'react';
import { ApiClient } from '../api/client';
import { browserSessionStore } from '../api/session';
import type { MeView } from '@lq/api';

export interface SessionState {
  api: ApiClient;
  /** Who is signed in; undefined before sign-in (or while /api/auth/me loads). */
  me?: MeView;
  loading: boolean;
  loadError?: unknown;
  signInWithPassword: (username: string, password: string) => Promise<void>;
  signInWithKey: (key: string) => Promise<void>;
  signOut: () => void;
}

const Context = createContext<SessionState | undefined>(undefined);

export function useSession(): SessionState {
  const s = useContext(Context);
  if (!s) {
    throw new Error('useSession outside SessionProvider');
  }
  return s;
}

/** The signed-in user as the console knows it; `me` decides which actions appear. */
export function useMe(): MeView {
  const { me } = useSession();
  if (!me) {
    throw new Error('useMe before sign-in');
  }
  return me;
}

export function SessionProvider({
  children,
  api: given,
}: {
  children: ReactNode;
  api?: ApiClient;
}) {
  const [me, setMe] = useState<MeView>();
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<unknown>();
  const api = useMemo(
    () => given ?? new ApiClient(browserSessionStore(), () => setMe(undefined)),
    [given],
  );

  const loadMe = useCallback(async () => {
    setLoading(true);
    setLoadError(undefined);
    try {
      setMe(await api.json<MeView>('/api/auth/me'));
    } catch (err) {
      setMe(undefined);
      setLoadError(err);
      throw err;
    } finally {
      setLoading(false);
    }
  }, [api]);

  useEffect(() => {
    if (api.store.get()) {
      loadMe().catch(() => undefined);
    } else {
      setLoading(false);
    }
  }, [api, loadMe]);

  const value = useMemo<SessionState>(
    () => ({
      api,
      me,
      loading,
      loadError,
      async signInWithPassword(username, password) {
        await api.login(username, password);
        await loadMe();
      },
      async signInWithKey(key) {
        api.useApiKey(key);
        try {
          await loadMe();
        } catch (err) {
          api.store.set(undefined);
          throw err;
        }
      },
      signOut() {
        api.signOut();
        setMe(undefined);
        setLoadError(undefined);
      },
    }),
    [api, me, loading, loadError, loadMe],
  );
  return <Context.Provider value={value}>{children}</Context.Provider>;
}
