// The control plane's REST API over fetch: bearer auth (an API key, or a session that refreshes
// its access token on a 401), errors as ApiError, and Server-Sent Events followed across
// disconnects (reconnecting with Last-Event-ID / after= so no event is lost or repeated).
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, saveConfig, type LqctlConfig } from './config.js';
import {
  ApiError,
  InterruptedError,
  StreamLostError,
  UnreachableError,
  networkCause,
} from './errors.js';
import { SseParser, type SseEvent } from './sse.js';
import type { ErrorBody, TokenPairView } from '@lq/api';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  /** A JSON body. */
  json?: unknown;
  /** A streamed body (never replayed, so a 401 is not retried after a refresh). */
  body?: AsyncIterable<Uint8Array>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Where the bearer token comes from. */
export interface AuthSource {
  token(): Promise<string | undefined>;
  /** After a 401: obtain a new token if this source can; true means retry once. */
  renew(): Promise<boolean>;
}

/** An API key or a token given on the command line or in the environment. */
export class StaticAuth implements AuthSource {
  constructor(private readonly value: string | undefined) {}
  token(): Promise<string | undefined> {
    return Promise.resolve(this.value);
  }
  renew(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

/** Stores a token pair in the config (access expiry as an ISO time). */
export function applyTokenPair(
  config: LqctlConfig,
  pair: Pick<TokenPairView, 'access_token' | 'refresh_token' | 'expires_in'>,
  now = Date.now(),
): void {
  config.access_token = pair.access_token;
  config.refresh_token = pair.refresh_token;
  config.access_expires_at = new Date(now + pair.expires_in * 1000).toISOString();
}

/**
 * The session `lqctl login --username` stored: an access token (15 minutes by default) and a
 * refresh token that is good once. The access token is refreshed before it expires and after a
 * 401, and the new pair is saved at once (the old refresh token no longer works).
 */
export class SessionAuth implements AuthSource {
  private renewing: Promise<boolean> | undefined;

  constructor(
    private readonly server: string,
    private readonly configFile: string,
    private readonly config: LqctlConfig,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly now: () => number = Date.now,
    /** The config file's context the session is stored in (its current one when unset). */
    private readonly context?: string,
  ) {}

  async token(): Promise<string | undefined> {
    const expires = this.config.access_expires_at ? Date.parse(this.config.access_expires_at) : NaN;
    if (this.config.refresh_token && expires - 10_000 < this.now()) {
      await this.renew();
    }
    return this.config.access_token;
  }

  renew(): Promise<boolean> {
    this.renewing ??= this.refresh().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async refresh(): Promise<boolean> {
    const used = this.config.refresh_token;
    if (!used) {
      return false;
    }
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.server}/api/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: used }),
      });
    } catch (err) {
      throw new UnreachableError(this.server, networkCause(err));
    }
    if (res.ok) {
      applyTokenPair(this.config, (await res.json()) as TokenPairView, this.now());
      saveConfig(this.configFile, this.config, this.context);
      return true;
    }
    await res.body?.cancel();
    // Another lqctl may have refreshed first (the token is good once): take the pair it saved.
    const onDisk = loadConfig(this.configFile, undefined, this.context);
    if (onDisk.refresh_token && onDisk.refresh_token !== used && onDisk.access_token) {
      Object.assign(this.config, onDisk);
      return true;
    }
    return false;
  }
}

/** An error response as ApiError: the API's ErrorBody { statusCode, code, message, permission? }. */
export async function apiErrorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    // Whatever it holds: a proxy may answer JSON of its own.
    const body = JSON.parse(text) as Partial<Record<keyof ErrorBody, unknown>>;
    const message = Array.isArray(body.message)
      ? body.message.join('; ')
      : typeof body.message === 'string'
        ? body.message
        : `HTTP ${res.status}`;
    return new ApiError(
      res.status,
      typeof body.code === 'string' ? body.code : `HTTP_${res.status}`,
      message,
      typeof body.permission === 'string' ? body.permission : undefined,
      typeof body.agentCode === 'string' ? body.agentCode : undefined,
    );
  } catch {
    const snippet = text.trim().slice(0, 200);
    return new ApiError(
      res.status,
      `HTTP_${res.status}`,
      snippet || `HTTP ${res.status} ${res.statusText}`,
    );
  }
}

/** Gateways and a restarting control plane answer these while a stream can still resume. */
const RETRYABLE_STATUS = new Set([502, 503, 504]);

export interface FollowOptions {
  /** The query of each (re)connection, given the last event id seen. */
  query?: (lastEventId: string | undefined) => Query;
  /** The event after which the stream is complete (no reconnect). */
  isEnd: (event: SseEvent) => boolean;
  signal?: AbortSignal;
  /** Reconnect when nothing (not even a keepalive comment) arrives for this long. */
  idleTimeoutMs?: number;
  /** Give up when the stream stays broken for this long. */
  giveUpMs?: number;
  /** Told before each reconnect. */
  onReconnect?: (reason: string) => void;
}

export class ApiClient {
  constructor(
    readonly server: string,
    private readonly auth: AuthSource,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  url(path: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) {
        params.set(k, String(v));
      }
    }
    const qs = params.toString();
    return `${this.server}${path}${qs ? `?${qs}` : ''}`;
  }

  /** One request; a non-2xx answer throws ApiError, an unreachable server UnreachableError. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...opts.headers };
      const token = await this.auth.token();
      if (token) {
        headers.authorization = `Bearer ${token}`;
      }
      let body: string | AsyncIterable<Uint8Array> | undefined;
      if (opts.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(opts.json);
      } else if (opts.body) {
        body = opts.body;
      }
      let res: Response;
      try {
        res = await this.fetchImpl(this.url(path, opts.query), {
          method,
          headers,
          body,
          signal: opts.signal,
          ...(typeof body === 'object' ? { duplex: 'half' as const } : {}),
        });
      } catch (err) {
        if (opts.signal?.aborted) {
          throw abortReason(opts.signal);
        }
        throw new UnreachableError(this.server, networkCause(err));
      }
      if (res.status === 401 && attempt === 0 && !opts.body && (await this.auth.renew())) {
        await res.body?.cancel();
        continue;
      }
      if (!res.ok) {
        throw await apiErrorOf(res);
      }
      return res;
    }
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, {
      ...opts,
      headers: { accept: 'application/json', ...opts.headers },
    });
    return (await res.json()) as T;
  }

  /**
   * Follows a Server-Sent Events stream until `isEnd` says it is complete. A broken stream
   * (reset, cut, silent past the idle timeout, 502/503/504) is reopened with the last event id
   * (Last-Event-ID header, and whatever `query` makes of it) after a growing pause; it gives up
   * with StreamLostError when broken for `giveUpMs`.
   */
  async *follow(path: string, opts: FollowOptions): AsyncGenerator<SseEvent> {
    const idleMs = opts.idleTimeoutMs ?? 45_000;
    const giveUpMs = opts.giveUpMs ?? 60_000;
    let lastId: string | undefined;
    let brokenSince: number | undefined;
    let pause = 250;
    for (;;) {
      const attempt = new AbortController();
      const stop = () => attempt.abort();
      opts.signal?.addEventListener('abort', stop, { once: true });
      let idle: NodeJS.Timeout | undefined;
      let reason: string;
      try {
        const res = await this.request('GET', path, {
          query: opts.query?.(lastId),
          headers: {
            accept: 'text/event-stream',
            ...(lastId === undefined ? {} : { 'last-event-id': lastId }),
          },
          signal: attempt.signal,
        });
        const parser = new SseParser();
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        idle = setTimeout(stop, idleMs);
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            break;
          }
          idle.refresh();
          brokenSince = undefined;
          pause = 250;
          for (const e of parser.push(value)) {
            if (e.id !== undefined) {
              lastId = e.id;
            }
            yield e;
            if (opts.isEnd(e)) {
              return;
            }
          }
        }
        reason = 'the stream ended before its end event';
      } catch (err) {
        if (opts.signal?.aborted) {
          throw abortReason(opts.signal);
        }
        if (err instanceof ApiError && !RETRYABLE_STATUS.has(err.status)) {
          throw err;
        }
        reason = attempt.signal.aborted
          ? `nothing arrived for ${+(idleMs / 1000).toFixed(1)} s`
          : err instanceof ApiError
            ? `${err.status} ${err.code}`
            : networkCause(err);
      } finally {
        clearTimeout(idle);
        opts.signal?.removeEventListener('abort', stop);
        // Closes the connection when the consumer stops early or the stream is complete.
        attempt.abort();
      }
      brokenSince ??= Date.now();
      if (Date.now() - brokenSince > giveUpMs) {
        throw new StreamLostError(
          `the event stream ${path} broke (${reason}) and did not come back within ${Math.round(giveUpMs / 1000)} s`,
        );
      }
      opts.onReconnect?.(reason);
      try {
        await sleep(pause, undefined, { signal: opts.signal });
      } catch {
        throw abortReason(opts.signal!);
      }
      pause = Math.min(pause * 2, 5000);
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new InterruptedError();
}
