import { describe, expect, it, beforeAll, afterAll } from '@jest/globals';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { jsonBodies } from './json-body.js';

// Small UTF-8 bodies are read by jsonBodies itself, the rest by body-parser: both must answer
// alike. The same bytes go once with a Content-Length (read here) and once chunked (no length:
// body-parser reads it).
describe('jsonBodies', () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    const app = express();
    app.use(jsonBodies(1024 * 1024));
    app.post('/api/echo', (req, res) => {
      res.json({ body: req.body as unknown });
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  function post(body: Buffer, chunked: boolean, headers: Record<string, string> = {}) {
    return new Promise<{ status: number; body: { body?: unknown; message?: string } }>(
      (resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/api/echo',
            headers: {
              'content-type': 'application/json',
              ...(chunked ? {} : { 'content-length': body.length }),
              ...headers,
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () =>
              resolve({ status: res.statusCode!, body: JSON.parse(text) as { body?: unknown } }),
            );
          },
        );
        req.once('error', reject);
        if (chunked) {
          req.write(body.subarray(0, 1));
          req.end(body.subarray(1));
        } else {
          req.end(body);
        }
      },
    );
  }

  const bodies = [
    '{}',
    ' {"timeout_seconds": 5, "é": "ü\\u2028"}',
    '[1, {"b": null}]',
    '\ufeff{"a":1}',
    '"text"',
    '  42',
    'nul',
    '{"a": 1,}',
    '{"a"',
    '   ',
    '\t\n',
  ];

  it.each(bodies)('should answer %j as body-parser does', async (text) => {
    const bytes = Buffer.from(text, 'utf8');
    const [here, parser] = [await post(bytes, false), await post(bytes, true)];
    expect({ status: here.status, body: here.body.body, message: here.body.message }).toEqual({
      status: parser.status,
      body: parser.body.body,
      message: parser.body.message,
    });
  });

  it('should read an empty body with a length of 0 as {}', async () => {
    expect((await post(Buffer.alloc(0), false)).body.body).toEqual({});
  });

  it('should leave other charsets and content codings to body-parser', async () => {
    const utf16 = Buffer.from('\ufeff{"a":"é"}', 'utf16le');
    expect(
      (await post(utf16, false, { 'content-type': 'application/json; charset=utf-16le' })).body
        .body,
    ).toEqual({ a: 'é' });
    const latin = await post(Buffer.from('{}'), false, {
      'content-type': 'application/json; charset=latin1',
    });
    expect(latin.status).toBe(415);
  });
});
