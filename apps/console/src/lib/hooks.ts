import { useCallback, useEffect, useRef, useState } from 'react';
import type { ApiClient } from '../api/client';
import { errorOf } from '../api/client';
import { openEventStream, type StreamStatus } from '../api/sse';

export interface Loaded<T> {
  data?: T;
  error?: unknown;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when its deps change (and on reload()); the latest answer wins. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    loadRef.current(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ data, loading: false }),
      (error: unknown) =>
        !ctl.signal.aborted && setState((s) => ({ data: s.data, error, loading: false })),
    );
    return () => ctl.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** Follows a Server-Sent Events endpoint of the API with the user's token, reconnecting. */
export function useEventStream(
  api: ApiClient,
  url: string | undefined,
  onEvent: (event: string, data: unknown) => void,
): StreamStatus {
  const [status, setStatus] = useState<StreamStatus>({ state: 'connecting' });
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (!url) {
      return;
    }
    return openEventStream({
      url,
      open: (u, signal) => api.raw(u, { signal, headers: { Accept: 'text/event-stream' } }),
      errorOf,
      onStatus: setStatus,
      onEvent: (e) => {
        try {
          handler.current(e.event, JSON.parse(e.data));
        } catch {
          // a malformed event is skipped; the next one replaces it
        }
      },
    });
  }, [api, url]);
  return status;
}
