// @vitest-environment node
import { describe, expect, it } from 'vitest';
import { SseParser, backoffDelay, openEventStream, type StreamStatus } from './sse';

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) {
        c.enqueue(enc.encode(chunk));
      }
      c.close();
    },
  });
}

describe('SseParser', () => {
  it('should parse events split across chunks, with CRLF, comments and multi-line data', () => {
    const p = new SseParser();
    expect(p.feed(': keepalive\n\nretry: 2000\n\nevent: vms\nda')).toEqual([]);
    expect(p.feed('ta: {"a":1}\r')).toEqual([]);
    expect(p.feed('\n\r\ndata: one\ndata:two\n\n')).toEqual([
      { event: 'vms', data: '{"a":1}' },
      { event: 'message', data: 'one\ntwo' },
    ]);
    expect(p.retryMs).toBe(2000);
  });

  it('should drop an event that has no data', () => {
    expect(new SseParser().feed('event: nothing\n\n')).toEqual([]);
  });
});

describe('backoffDelay', () => {
  it('should double from the base up to the maximum, with jitter between half and all', () => {
    const low = (n: number) => backoffDelay(n, { baseMs: 1000, maxMs: 8000, random: () => 0 });
    const high = (n: number) => backoffDelay(n, { baseMs: 1000, maxMs: 8000, random: () => 1 });
    expect([0, 1, 2, 3, 4, 10].map(high)).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect([0, 1, 2, 3, 4].map(low)).toEqual([500, 1000, 2000, 4000, 4000]);
    expect(high(10_000)).toBe(8000);
  });
});

describe('openEventStream', () => {
  it('should reconnect after failures with growing delays and reset them once connected', async () => {
    const answers: Array<() => Response> = [
      () => new Response('down', { status: 503 }),
      () => new Response('down', { status: 502 }),
      () => new Response(streamOf(['event: vms\ndata: {"n":1}\n\n']), { status: 200 }),
      () => new Response('down', { status: 503 }),
    ];
    const statuses: StreamStatus[] = [];
    const events: string[] = [];
    const sleeps: number[] = [];
    let close = () => undefined as void;
    await new Promise<void>((resolve) => {
      close = openEventStream({
        url: '/api/vms/stream',
        open: () => {
          const next = answers.shift();
          if (!next) {
            resolve();
            return new Promise<Response>(() => undefined);
          }
          return Promise.resolve(next());
        },
        onEvent: (e) => events.push(`${e.event} ${e.data}`),
        onStatus: (s) => statuses.push(s),
        backoff: { baseMs: 100, maxMs: 1000, random: () => 1 },
        sleep: (ms) => {
          sleeps.push(ms);
          return Promise.resolve();
        },
      });
    });
    close();
    expect(events).toEqual(['vms {"n":1}']);
    // 503, 502: 100, 200; the stream that worked ended: back to 100; then 503: 200.
    expect(sleeps).toEqual([100, 200, 100, 200]);
    expect(statuses.map((s) => s.state)).toEqual([
      'connecting',
      'retrying',
      'connecting',
      'retrying',
      'connecting',
      'open',
      'retrying',
      'connecting',
      'retrying',
      'connecting',
    ]);
  });

  it('should stop and report the error when the answer is 403 (retrying cannot help)', async () => {
    const status = await new Promise<StreamStatus>((resolve) => {
      openEventStream({
        url: '/x',
        open: () => Promise.resolve(new Response('{}', { status: 403 })),
        errorOf: (res) => Promise.resolve(`denied ${res.status}`),
        onEvent: () => undefined,
        onStatus: (s) => s.state === 'stopped' && resolve(s),
        sleep: () => Promise.resolve(),
      });
    });
    expect(status).toEqual({ state: 'stopped', error: 'denied 403' });
  });

  it('should stop reading and not reconnect once closed', async () => {
    let opens = 0;
    const close = openEventStream({
      url: '/x',
      open: (_url, signal) => {
        opens += 1;
        return new Promise<Response>((_, reject) =>
          signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
        );
      },
      onEvent: () => undefined,
    });
    close();
    await new Promise((r) => setTimeout(r, 10));
    expect(opens).toBe(1);
  });
});
