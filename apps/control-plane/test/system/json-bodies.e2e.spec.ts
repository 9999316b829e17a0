// REST takes JSON bodies however the client labels them (issue 16, acceptance 3): the seed's
// `curl -d '{"command":"id"}'` says application/x-www-form-urlencoded, a fetch with a byte body
// says nothing. A real curl against the real stack; the file upload stays a raw stream and
// Connect keeps its own body handling.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOneNodeStack, type OneNodeStack } from '../../../../test/support/one-node-stack.js';
import {
  TEST_ADMIN_TOKEN,
  adminFetch,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

const run = promisify(execFile);

describe('JSON bodies without a JSON Content-Type (real curl, real stack)', () => {
  let stack: OneNodeStack | undefined;
  let cp: RunningControlPlane;
  let dir: string;
  /** Guest paths: the simulated VM's own work dir, removed with the stack. */
  let guest: (name: string) => string;

  /** curl's status line and body: `-w` appends the status after the body. */
  async function curl(args: string[]): Promise<{ status: number; body: any; text: string }> {
    const { stdout } = await run('curl', [
      '-s',
      '-H',
      `Authorization: Bearer ${TEST_ADMIN_TOKEN}`,
      '-w',
      '\n%{http_code}',
      ...args,
    ]);
    const cut = stdout.lastIndexOf('\n');
    const text = stdout.slice(0, cut);
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: Number(stdout.slice(cut + 1)), body, text };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lq-json-bodies-'));
    stack = await startOneNodeStack({ name: 'jsonbody', vms: 1 });
    ({ cp } = stack);
    guest = (name) => join(stack!.sim.vms[0]!.workDir, name);
  });

  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('should run the command of curl -d without a Content-Type, as the seed sends it', async () => {
    const r = await curl([
      '-X',
      'POST',
      `${cp.url}/api/vms/vm-1/execute`,
      '-d',
      '{"command":"id"}',
    ]);
    expect([r.status, r.body?.exit_code]).toEqual([200, 0]);
    expect(r.body.stdout).toMatch(/^uid=\d+/);
  });

  it('should take a JSON body that comes with no Content-Type at all, or as text/plain', async () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ argv: ['echo', 'none'] }));
    const none = await adminFetch(`${cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      body: bytes,
    });
    expect(none.headers.get('content-type')).toMatch(/^application\/json/);
    expect([none.status, ((await none.json()) as any).stdout]).toEqual([200, 'none\n']);
    // fetch labels a string body text/plain.
    const plain = await adminFetch(`${cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      body: JSON.stringify({ argv: ['echo', 'plain'] }),
    });
    expect([plain.status, ((await plain.json()) as any).stdout]).toEqual([200, 'plain\n']);
  });

  it('should answer 400 naming the problem when the body is not JSON', async () => {
    const r = await curl(['-X', 'POST', `${cp.url}/api/vms/vm-1/execute`, '-d', 'command=id']);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ statusCode: 400, code: 'INVALID_REQUEST' });
    expect(r.body.message).toMatch(/not valid JSON/);
    expect(r.body.correlationId).toEqual(expect.any(String));
    const huge = await adminFetch(`${cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      body: new TextEncoder().encode(JSON.stringify({ command: 'x'.repeat(5 * 1024 * 1024) })),
    });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('should refuse a body of another media type with 415 naming what to send', async () => {
    const r = await curl([
      '-X',
      'POST',
      `${cp.url}/api/vms/vm-1/execute`,
      '-H',
      'Content-Type: application/xml',
      '-d',
      '<command>id</command>',
    ]);
    expect(r.status).toBe(415);
    expect(r.body).toMatchObject({ statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(r.body.message).toMatch(/application\/xml.*JSON/);
  });

  it('should keep a file upload unparsed: JSON-looking bytes and more than the JSON limit, no Content-Type', async () => {
    const jsonish = join(dir, 'jsonish');
    writeFileSync(jsonish, '{"command":"id"}');
    const up1 = await curl([
      '-T',
      jsonish,
      `${cp.url}/api/vms/vm-1/files?path=${guest('jsonish')}`,
    ]);
    expect([up1.status, up1.body?.bytes]).toEqual([200, 16]);
    const back1 = await curl([`${cp.url}/api/vms/vm-1/files?path=${guest('jsonish')}`]);
    expect(back1.text).toBe('{"command":"id"}');

    const big = randomBytes(5 * 1024 * 1024);
    const bigFile = join(dir, 'big');
    writeFileSync(bigFile, big);
    const up2 = await curl(['-T', bigFile, `${cp.url}/api/vms/vm-1/files?path=${guest('big')}`]);
    expect([up2.status, up2.body?.bytes]).toEqual([200, big.length]);
    const back2 = await adminFetch(`${cp.url}/api/vms/vm-1/files?path=${guest('big')}`);
    expect(Buffer.from(await back2.arrayBuffer()).equals(big)).toBe(true);
  });

  it('should leave Connect JSON as it was', async () => {
    const r = await curl([
      '-X',
      'POST',
      `${cp.url}/limiquantix.compute.v1.VMService/ExecuteScript`,
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"vmId":"vm-1","argv":["echo","connect"]}',
    ]);
    expect(r.status).toBe(200);
    expect(Buffer.from(String(r.body.stdoutBytes), 'base64').toString()).toBe('connect\n');
    // A method Connect does not know goes on to Nest: 404, whatever its body.
    const unknown = await curl([
      '-X',
      'POST',
      `${cp.url}/limiquantix.compute.v1.VMService/NoSuchMethod`,
      '-H',
      'Content-Type: application/proto',
      '--data-binary',
      'x',
    ]);
    expect(unknown.status).toBe(404);
  });
});
