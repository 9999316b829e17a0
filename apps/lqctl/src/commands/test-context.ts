// For unit tests: a Context on a given server whose stdout and stderr are captured.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { ApiClient, StaticAuth } from '../api-client.js';
import { parseCommandLine, type ParsedCommand } from '../args.js';
import type { Context } from './context.js';

export function command(argv: string[]): ParsedCommand {
  const p = parseCommandLine(argv);
  if (p.kind !== 'command') {
    throw new Error(`not a command: ${argv.join(' ')}`);
  }
  return p.command;
}

export function testContext(server: string): {
  ctx: Context;
  out: () => string;
  err: () => string;
} {
  const capture = () => {
    let text = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    });
    return { stream, text: () => text };
  };
  const out = capture();
  const err = capture();
  const ctx = {
    client: new ApiClient(server, new StaticAuth('lq_t')),
    settings: { server, token: 'lq_t', tokenSource: 'env' },
    json: false,
    configFile: '/dev/null',
    contextName: 'default',
    config: {},
    stdout: out.stream,
    stderr: err.stream,
    stdin: process.stdin,
  } as unknown as Context;
  return { ctx, out: out.text, err: err.text };
}

/** A local HTTP server; resolves to it and its base URL. */
export async function testServer(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}
