// Server-Sent Events over fetch: EventSource cannot send an Authorization header, and the
// token must not go into a URL (it would land in logs). A small parser, a backoff rule, and a
// loop that reconnects until closed.

export interface SseEvent {
  event: string;
  data: string;
}

/** Incremental text/event-stream parser (WHATWG rules for event, data, retry and comments). */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  /** The server's `retry:` in ms, when it sent one. */
  retryMs?: number;

  feed(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) {
        break;
      }
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) {
        break;
      }
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      if (line === '') {
        if (this.data.length > 0) {
          out.push({ event: this.event || 'message', data: this.data.join('\n') });
        }
        this.event = '';
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) {
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) {
        value = value.slice(1);
      }
      if (field === 'event') {
        this.event = value;
      } else if (field === 'data') {
        this.data.push(value);
      } else if (field === 'retry' && /^\d+$/.test(value)) {
        this.retryMs = Number(value);
      }
    }
    return out;
  }
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  random?: () => number;
}

/**
 * Delay before reconnect attempt `attempt` (0 = the first retry): doubling from baseMs up to
 * maxMs, with jitter between half and all of it so many browsers do not reconnect in step.
 */
export function backoffDelay(
  attempt: number,
  { baseMs, maxMs, random = Math.random }: BackoffOptions,
) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export type StreamStatus =
  | { state: 'connecting' }
  | { state: 'open' }
  | { state: 'retrying'; inMs: number; error: unknown }
  | { state: 'stopped'; error: unknown };

export interface EventStreamOptions {
  url: string;
  /** Opens the request (the API client adds the token and refreshes it when due). */
  open: (url: string, signal: AbortSignal) => Promise<Response>;
  onEvent: (event: SseEvent) => void;
  onStatus?: (status: StreamStatus) => void;
  /** Turns a failed response into the error to report. */
  errorOf?: (res: Response) => Promise<unknown>;
  backoff?: Partial<BackoffOptions>;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Statuses after which a retry cannot help: stop and say why. */
const PERMANENT = new Set([400, 401, 403, 404]);

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/**
 * Reads an event stream and reconnects when it ends or fails (a server's stream lifetime, a
 * restart, a network change), backing off while it keeps failing. A successful connection
 * resets the backoff. Returns close().
 */
export function openEventStream(options: EventStreamOptions): () => void {
  const controller = new AbortController();
  const { signal } = controller;
  const sleep = options.sleep ?? abortableSleep;
  const status = options.onStatus ?? (() => undefined);
  void (async () => {
    let attempt = 0;
    let serverRetry: number | undefined;
    while (!signal.aborted) {
      status({ state: 'connecting' });
      let error: unknown;
      try {
        const res = await options.open(options.url, signal);
        if (!res.ok || !res.body) {
          error = options.errorOf ? await options.errorOf(res) : new Error(`HTTP ${res.status}`);
          if (PERMANENT.has(res.status)) {
            status({ state: 'stopped', error });
            return;
          }
        } else {
          status({ state: 'open' });
          attempt = 0;
          const parser = new SseParser();
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) {
              break;
            }
            for (const e of parser.feed(value)) {
              options.onEvent(e);
            }
          }
          serverRetry = parser.retryMs ?? serverRetry;
          error = new Error('the stream ended');
        }
      } catch (err) {
        if (signal.aborted) {
          return;
        }
        error = err;
        const name = (err as Error)?.name;
        if (name === 'SessionExpiredError') {
          status({ state: 'stopped', error });
          return;
        }
      }
      if (signal.aborted) {
        return;
      }
      const inMs = backoffDelay(attempt, {
        baseMs: options.backoff?.baseMs ?? serverRetry ?? 1000,
        maxMs: options.backoff?.maxMs ?? 30_000,
        random: options.backoff?.random,
      });
      attempt += 1;
      status({ state: 'retrying', inMs, error });
      await sleep(inMs, signal);
    }
  })();
  return () => controller.abort();
}
