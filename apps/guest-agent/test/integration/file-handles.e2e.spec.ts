// File handles and os.info through the real agent executable (issue 17): file.open keeps a file
// open under the read rules (roots as written and resolved, no symlink escape, the caller's
// FileLimits), file.handle.read reads it by handle, file.close closes it; the number of open
// handles and their idle time are bounded. os.info answers the OS facts alone.
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  FileCloseRequestSchema,
  FileHandleReadRequestSchema,
  FileOpenRequestSchema,
  GetOsInfoRequestSchema,
  type FileLimits,
} from '@lq/proto';
import { AgentRequestError, type AgentClient } from '@lq/host';
import { startAgent, type RunningAgent } from '../support/agent-process.js';

const IDLE_MS = 1500;
const MAX_HANDLES = 3;
const READ_AHEAD_MAX_AGE_MS = 200;

async function expectAgentError(
  p: Promise<unknown>,
  code: ErrorCode,
  message: RegExp,
): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentRequestError);
  expect(ErrorCode[(err as AgentRequestError).code]).toBe(ErrorCode[code]);
  expect((err as Error).message).toMatch(message);
}

describe('file handles and os.info through the agent executable', () => {
  let agent: RunningAgent;
  let client: AgentClient;
  let root: string;
  let outside: string;
  const data = randomBytes(10_000);

  const open = (path: string, limits?: FileLimits) =>
    client.call(
      { case: 'fileOpen', value: create(FileOpenRequestSchema, { path, limits }) },
      'fileOpenResponse',
    );
  const read = (handle: bigint, length: number, offset?: bigint, limits?: FileLimits) =>
    client.call(
      {
        case: 'fileHandleRead',
        value: create(FileHandleReadRequestSchema, { handle, length, offset, limits }),
      },
      'fileHandleReadResponse',
    );
  const close = (handle: bigint, limits?: FileLimits) =>
    client.call(
      { case: 'fileClose', value: create(FileCloseRequestSchema, { handle, limits }) },
      'fileCloseResponse',
    );

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'lq-handles-root-'));
    outside = mkdtempSync(join(tmpdir(), 'lq-handles-outside-'));
    writeFileSync(join(root, 'data.bin'), data);
    mkdirSync(join(root, 'sub'));
    writeFileSync(join(root, 'sub', 'inner.txt'), 'inner');
    writeFileSync(join(outside, 'secret.txt'), 'secret');
    symlinkSync(join(outside, 'secret.txt'), join(root, 'escape'));
    symlinkSync(join(root, 'data.bin'), join(root, 'inside-link'));
    agent = await startAgent({
      files: {
        roots: [root],
        max_open_handles: MAX_HANDLES,
        handle_idle_timeout_ms: IDLE_MS,
        read_ahead_max_age_ms: READ_AHEAD_MAX_AGE_MS,
      },
    });
    client = await agent.client();
  }, 30_000);

  afterAll(async () => {
    await agent?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('should announce os.info and file.handles as capabilities', () => {
    expect(client.capabilities).toEqual(expect.arrayContaining(['os.info', 'file.handles']));
  });

  it('should answer os.info with the OS facts alone', async () => {
    const r = await client.call(
      { case: 'getOsInfo', value: create(GetOsInfoRequestSchema) },
      'getOsInfoResponse',
    );
    expect(r.os).toMatchObject({
      kernelRelease: os.release(),
      kernelVersion: os.version(),
      arch: os.machine(),
    });
    expect(r.os?.id).not.toBe('');
  });

  it('should read a file by handle in order, at an offset, and say where it ends', async () => {
    const opened = await open(join(root, 'data.bin'));
    expect(opened.handle).not.toBe(0n);
    expect(opened.totalSize).toBe(BigInt(data.length));
    expect(opened.idleTimeoutMs).toBe(IDLE_MS);
    const parts: Buffer[] = [];
    for (;;) {
      const r = await read(opened.handle, 4096);
      parts.push(Buffer.from(r.data));
      if (r.eof) {
        break;
      }
    }
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    // Past 64 KiB a read goes through the thread pool rather than at once: the same bytes.
    const whole = await read(opened.handle, 70_000, 0n);
    expect(whole.eof).toBe(true);
    expect(Buffer.from(whole.data).equals(data)).toBe(true);
    const at = await read(opened.handle, 100, 5000n);
    expect(at.offset).toBe(5000n);
    expect(Buffer.from(at.data).equals(data.subarray(5000, 5100))).toBe(true);
    // The position moved past the read at the offset.
    const next = await read(opened.handle, 10);
    expect(next.offset).toBe(5100n);
    expect((await close(opened.handle)).closed).toBe(true);
    expect((await close(opened.handle)).closed).toBe(false);
    await expectAgentError(read(opened.handle, 10), ErrorCode.NOT_FOUND, /is not open/);
  });

  it('should take consecutive chunks for reads pipelined on one handle', async () => {
    const opened = await open(join(root, 'inside-link'));
    const chunks = await Promise.all(Array.from({ length: 5 }, () => read(opened.handle, 2000)));
    const sorted = [...chunks].sort((a, b) => Number(a.offset - b.offset));
    expect(sorted.map((c) => Number(c.offset))).toEqual([0, 2000, 4000, 6000, 8000]);
    expect(Buffer.concat(sorted.map((c) => Buffer.from(c.data))).equals(data)).toBe(true);
    await close(opened.handle);
  });

  it('should see a file rewritten under a reader after read_ahead_max_age_ms, grown at once', async () => {
    const path = join(root, 'changing.bin');
    const first = randomBytes(20_000);
    writeFileSync(path, first);
    const opened = await open(path);
    // Small sequential reads are served from one read ahead (files.read_ahead_bytes)...
    const a = await read(opened.handle, 4096);
    expect(Buffer.from(a.data).equals(first.subarray(0, 4096))).toBe(true);
    // ...so bytes rewritten in place are seen once what was read ahead is older than its bound.
    const fd = openSync(path, 'r+');
    try {
      writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, 4096);
    } finally {
      closeSync(fd);
    }
    await sleep(READ_AHEAD_MAX_AGE_MS + 50);
    const b = await read(opened.handle, 4096);
    expect(b.offset).toBe(4096n);
    expect(Buffer.from(b.data).every((x) => x === 0xee)).toBe(true);
    // Bytes past what the file held are read fresh: a reader at its end sees it grow at once.
    const rest = await read(opened.handle, 20_000 - 8192);
    expect(Buffer.from(rest.data).equals(first.subarray(8192))).toBe(true);
    const atEnd = await read(opened.handle, 4096);
    expect(atEnd.eof).toBe(true);
    expect(atEnd.data.length).toBe(0);
    const more = randomBytes(3000);
    appendFileSync(path, more);
    const grown = await read(opened.handle, 4096, 20_000n);
    expect(grown.eof).toBe(true);
    expect(Buffer.from(grown.data).equals(more)).toBe(true);
    await close(opened.handle);
  });

  it('should refuse to open outside the roots, through a link leaving them, or a directory', async () => {
    await expectAgentError(
      open(join(outside, 'secret.txt')),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    await expectAgentError(
      open(join(root, 'escape')),
      ErrorCode.PATH_NOT_ALLOWED,
      /resolves to .*outside the allowed roots/,
    );
    await expectAgentError(
      open(`${root}/sub/../escape`),
      ErrorCode.PATH_NOT_ALLOWED,
      /must be normalised/,
    );
    await expectAgentError(open(join(root, 'sub')), ErrorCode.INVALID_REQUEST, /is a directory/);
    await expectAgentError(open(join(root, 'missing')), ErrorCode.NOT_FOUND, /missing/);
  });

  it('should hold a handle to the limits it was opened with', async () => {
    const limits = { roots: [join(root, 'sub')], noSetid: false } as FileLimits;
    await expectAgentError(
      open(join(root, 'data.bin'), limits),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    const opened = await open(join(root, 'sub', 'inner.txt'), limits);
    await expectAgentError(read(opened.handle, 10), ErrorCode.NOT_ALLOWED, /other file limits/);
    await expectAgentError(close(opened.handle), ErrorCode.NOT_ALLOWED, /other file limits/);
    const r = await read(opened.handle, 10, undefined, limits);
    expect(Buffer.from(r.data).toString()).toBe('inner');
    expect((await close(opened.handle, limits)).closed).toBe(true);
  });

  it('should refuse a handle past files.max_open_handles until one is closed', async () => {
    const handles = [];
    for (let i = 0; i < MAX_HANDLES; i++) {
      handles.push((await open(join(root, 'data.bin'))).handle);
    }
    await expectAgentError(
      open(join(root, 'data.bin')),
      ErrorCode.BUSY,
      new RegExp(`${MAX_HANDLES} file handles are open \\(files.max_open_handles\\)`),
    );
    await close(handles.pop()!);
    handles.push((await open(join(root, 'data.bin'))).handle);
    for (const h of handles) {
      expect((await close(h)).closed).toBe(true);
    }
  });

  it('should close a handle left unused for files.handle_idle_timeout_ms', async () => {
    const used = await open(join(root, 'data.bin'));
    const idle = await open(join(root, 'data.bin'));
    // Reading keeps a handle open past its idle time; the other one expires.
    const until = Date.now() + IDLE_MS * 3;
    while (Date.now() < until) {
      await read(used.handle, 1, 0n);
      await sleep(IDLE_MS / 5);
    }
    await expectAgentError(
      read(idle.handle, 10),
      ErrorCode.NOT_FOUND,
      /closed after files.handle_idle_timeout_ms/,
    );
    expect((await close(idle.handle)).closed).toBe(false);
    expect((await close(used.handle)).closed).toBe(true);
  }, 30_000);

  it('should refuse a read larger than files.chunk_max_bytes', async () => {
    const opened = await open(join(root, 'data.bin'));
    await expectAgentError(
      read(opened.handle, 2 * 1024 * 1024),
      ErrorCode.TOO_LARGE,
      /files.chunk_max_bytes/,
    );
    await close(opened.handle);
  });
});
