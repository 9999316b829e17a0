import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { ApiClient, SessionAuth, StaticAuth } from './api-client.js';
import { loadConfig, saveConfig, type LqctlConfig } from './config.js';
import { ApiError, StreamLostError, UnreachableError } from './errors.js';
import type { SseEvent } from './sse.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const dir = mkdtempSync(join(tmpdir(), 'lqctl-api-'));
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((r) => {
          s.closeAllConnections();
          s.close(r);
        }),
    ),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A local HTTP server answering with `handler`; resolves to its base URL. */
async function serve(handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return `http://127.0.0.1:${addr.port}`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function collect(it: AsyncIterable<SseEvent>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of it) {
    out.push(e);
  }
  return out;
}

describe('ApiClient', () => {
  it('should send the bearer token and turn an error body into ApiError', async () => {
    const url = await serve((req, res) =>
      req.headers.authorization === 'Bearer lq_good'
        ? json(res, 403, {
            statusCode: 403,
            code: 'PERMISSION_DENIED',
            message: 'guest.exec is needed',
            permission: 'guest.exec',
          })
        : json(res, 401, { statusCode: 401, code: 'UNAUTHENTICATED', message: 'unknown API key' }),
    );
    const err = await new ApiClient(url, new StaticAuth('lq_good'))
      .json('GET', '/api/vms')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 403, code: 'PERMISSION_DENIED', permission: 'guest.exec' });
    await expect(
      new ApiClient(url, new StaticAuth('lq_bad')).json('GET', '/x'),
    ).rejects.toMatchObject({ status: 401, message: 'unknown API key' });
  });

  it('should keep a non-JSON error body as the message', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(502);
      res.end('<html>Bad Gateway</html>');
    });
    await expect(
      new ApiClient(url, new StaticAuth(undefined)).json('GET', '/'),
    ).rejects.toMatchObject({ status: 502, code: 'HTTP_502', message: '<html>Bad Gateway</html>' });
  });

  it('should say the server cannot be reached when nothing listens', async () => {
    const url = await serve(() => {});
    await new Promise((r) => {
      servers[0]!.close(r);
    });
    servers.length = 0;
    const err = await new ApiClient(url, new StaticAuth(undefined))
      .json('GET', '/')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });
});

describe('SessionAuth', () => {
  function session(url: string, config: LqctlConfig) {
    const file = join(dir, `session-${Math.random()}.json`);
    saveConfig(file, config);
    return { file, client: new ApiClient(url, new SessionAuth(url, file, config)) };
  }

  it('should refresh after a 401, retry once and save the new pair', async () => {
    const seen: string[] = [];
    const url = await serve((req, res, body) => {
      seen.push(`${req.url} ${req.headers.authorization ?? ''}`);
      if (req.url === '/api/auth/refresh') {
        expect(JSON.parse(body)).toEqual({ refresh_token: 'r1' });
        return json(res, 200, { access_token: 'a2', refresh_token: 'r2', expires_in: 900 });
      }
      return req.headers.authorization === 'Bearer a2'
        ? json(res, 200, { ok: true })
        : json(res, 401, {
            code: 'UNAUTHENTICATED',
            message: 'access token rejected: token expired',
          });
    });
    const future = new Date(Date.now() + 600_000).toISOString();
    const { file, client } = session(url, {
      server: url,
      access_token: 'a1',
      refresh_token: 'r1',
      access_expires_at: future,
    });
    await expect(client.json('GET', '/api/vms')).resolves.toEqual({ ok: true });
    expect(seen).toEqual(['/api/vms Bearer a1', '/api/auth/refresh ', '/api/vms Bearer a2']);
    const saved = loadConfig(file);
    expect(saved).toMatchObject({ access_token: 'a2', refresh_token: 'r2' });
    expect(Date.parse(saved.access_expires_at!)).toBeGreaterThan(Date.now() + 800_000);
  });

  it('should refresh before a request when the access token has expired', async () => {
    const seen: string[] = [];
    const url = await serve((req, res) => {
      seen.push(req.url!);
      return req.url === '/api/auth/refresh'
        ? json(res, 200, { access_token: 'a2', refresh_token: 'r2', expires_in: 900 })
        : json(res, 200, { auth: req.headers.authorization });
    });
    const { client } = session(url, {
      access_token: 'a1',
      refresh_token: 'r1',
      access_expires_at: new Date(Date.now() - 1000).toISOString(),
    });
    await expect(client.json('GET', '/api/vms')).resolves.toEqual({ auth: 'Bearer a2' });
    expect(seen).toEqual(['/api/auth/refresh', '/api/vms']);
  });

  it('should give up with the 401 when the refresh token is refused', async () => {
    const url = await serve((_req, res) =>
      json(res, 401, {
        code: 'UNAUTHENTICATED',
        message: 'refresh token unknown, already used, or expired',
      }),
    );
    const { client } = session(url, {
      access_token: 'a1',
      refresh_token: 'r1',
      access_expires_at: new Date(Date.now() + 600_000).toISOString(),
    });
    await expect(client.json('GET', '/api/vms')).rejects.toMatchObject({ status: 401 });
  });
});

describe('ApiClient.follow', () => {
  it('should resume after a cut stream from the last id, losing and repeating nothing', async () => {
    const requests: Array<{ after: string | null; lastEventId: string | undefined }> = [];
    const url = await serve((req, res) => {
      const u = new URL(req.url!, 'http://x');
      requests.push({
        after: u.searchParams.get('after'),
        lastEventId: req.headers['last-event-id'] as string | undefined,
      });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (requests.length === 1) {
        res.write('id: 1\nevent: output\ndata: {"text":"a"}\n\nid: 2\nevent: output\ndata: {"te');
        // Cut mid-event: event 3's start must not be delivered half.
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      res.write('id: 2\nevent: output\ndata: {"text":"b"}\n\n: keepalive\n\n');
      res.end(
        'id: 3\nevent: output\ndata: {"text":"c"}\n\nevent: end\ndata: {"status":"succeeded"}\n\n',
      );
    });
    const reconnects: string[] = [];
    const events = await collect(
      new ApiClient(url, new StaticAuth('t')).follow('/api/executions/e/output', {
        query: (after) => ({ follow: 1, after }),
        isEnd: (e) => e.event === 'end',
        onReconnect: (why) => reconnects.push(why),
      }),
    );
    expect(events.map((e) => `${e.event}:${e.id ?? ''}:${e.data}`)).toEqual([
      'output:1:{"text":"a"}',
      'output:2:{"text":"b"}',
      'output:3:{"text":"c"}',
      'end::{"status":"succeeded"}',
    ]);
    expect(requests).toEqual([
      { after: null, lastEventId: undefined },
      { after: '1', lastEventId: '1' },
    ]);
    expect(reconnects).toHaveLength(1);
  });

  it('should reconnect when the stream goes silent past the idle timeout', async () => {
    let n = 0;
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': hello\n\n');
      if (++n === 2) {
        res.end('event: end\ndata: {}\n\n');
      }
    });
    const reconnects: string[] = [];
    const events = await collect(
      new ApiClient(url, new StaticAuth('t')).follow('/s', {
        isEnd: (e) => e.event === 'end',
        idleTimeoutMs: 200,
        onReconnect: (why) => reconnects.push(why),
      }),
    );
    expect(events).toEqual([{ event: 'end', data: '{}' }]);
    expect(reconnects).toEqual(['nothing arrived for 0.2 s']);
  });

  it('should stop at once on a 404 and give up after giveUpMs of 503s', async () => {
    const url = await serve((req, res) =>
      req.url === '/gone'
        ? json(res, 404, { code: 'NOT_FOUND', message: 'no such execution' })
        : json(res, 503, { code: 'NODE_UNAVAILABLE', message: 'restarting' }),
    );
    const client = new ApiClient(url, new StaticAuth('t'));
    await expect(collect(client.follow('/gone', { isEnd: () => false }))).rejects.toBeInstanceOf(
      ApiError,
    );
    // Gives up (after giveUpMs of failures) instead of retrying forever.
    await expect(
      collect(client.follow('/busy', { isEnd: () => false, giveUpMs: 600 })),
    ).rejects.toBeInstanceOf(StreamLostError);
  });
});
