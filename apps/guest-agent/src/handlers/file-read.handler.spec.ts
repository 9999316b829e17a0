import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { lchown, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  type AgentPayload,
  ErrorCode,
  FileReadRequestSchema,
  type FileReadResponse,
} from '@lq/proto';
import { defaultConfig } from '../config.js';
import { FileReadHandler } from './file-read.handler.js';

function asRead(payload: AgentPayload): FileReadResponse {
  if (payload.case !== 'fileReadResponse') {
    throw new Error(`unexpected payload ${payload.case}`);
  }
  return payload.value;
}

describe('FileReadHandler', () => {
  let dir: string;
  let handler: FileReadHandler;

  const read = async (path: string, offset = 0, length = 0): Promise<FileReadResponse> =>
    asRead(
      await handler.handle(create(FileReadRequestSchema, { path, offset: BigInt(offset), length })),
    );

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lq-read-'));
    const config = defaultConfig();
    config.files.roots = [dir];
    config.files.chunk_max_bytes = 8;
    handler = new FileReadHandler(config);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('should read the file in chunks and mark the last one eof when length is 0', async () => {
    const file = join(dir, 'f.txt');
    await writeFile(file, '0123456789abcdefghij', { mode: 0o640 });
    const chunks: FileReadResponse[] = [];
    let offset = 0;
    for (;;) {
      const r = await read(file, offset);
      chunks.push(r);
      offset += r.data.length;
      if (r.eof) {
        break;
      }
    }
    expect(chunks.map((c) => Buffer.from(c.data).toString())).toEqual([
      '01234567',
      '89abcdef',
      'ghij',
    ]);
    expect(chunks.map((c) => c.eof)).toEqual([false, false, true]);
    expect(chunks.map((c) => c.offset)).toEqual([0n, 8n, 16n]);
    const st = await stat(file);
    expect(chunks[0]?.totalSize).toBe(20n);
    expect(chunks[0]?.mode).toBe(st.mode);
    expect((chunks[0]?.mode ?? 0) & 0o7777).toBe(0o640);
    expect(chunks[0]?.mtimeMs).toBe(BigInt(Math.trunc(st.mtimeMs)));
  });

  it('should mark eof when a chunk ends exactly at the end of the file', async () => {
    const file = join(dir, 'f.txt');
    await writeFile(file, '01234567');
    const r = await read(file, 4, 4);
    expect(Buffer.from(r.data).toString()).toBe('4567');
    expect(r.eof).toBe(true);
  });

  it('should return no data and eof when the offset is past the end', async () => {
    const file = join(dir, 'f.txt');
    await writeFile(file, 'abc');
    const r = await read(file, 100);
    expect(r.data.length).toBe(0);
    expect(r.eof).toBe(true);
    expect(r.totalSize).toBe(3n);
  });

  it('should return eof when the file is empty', async () => {
    const file = join(dir, 'empty');
    await writeFile(file, '');
    const r = await read(file);
    expect(r.data.length).toBe(0);
    expect(r.eof).toBe(true);
  });

  it('should answer TOO_LARGE naming files.chunk_max_bytes when length exceeds it', async () => {
    await writeFile(join(dir, 'f'), 'x');
    await expect(read(join(dir, 'f'), 0, 9)).rejects.toMatchObject({
      code: ErrorCode.TOO_LARGE,
      message: expect.stringContaining('files.chunk_max_bytes (8)'),
    });
  });

  it('should answer INVALID_REQUEST when the path is a directory', async () => {
    await mkdir(join(dir, 'd'));
    await expect(read(join(dir, 'd'))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('is a directory'),
    });
  });

  it('should answer INVALID_REQUEST without blocking when the path is a FIFO', async () => {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await expect(read(join(dir, 'fifo'))).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('not a regular file'),
    });
  });

  it('should answer NOT_FOUND when the file does not exist', async () => {
    await expect(read(join(dir, 'missing'))).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
  });

  it('should answer PATH_NOT_ALLOWED when the path is outside the roots', async () => {
    await expect(read('/etc/hostname')).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
    });
  });

  it('should answer INVALID_REQUEST when the offset is beyond 2^53', async () => {
    await writeFile(join(dir, 'f'), 'x');
    await expect(
      handler.handle(
        create(FileReadRequestSchema, { path: join(dir, 'f'), offset: 1n << 60n, length: 1 }),
      ),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
  });

  it('should read a procfs file when its reported size is 0', async () => {
    const config = defaultConfig();
    const procHandler = new FileReadHandler(config);
    const r = asRead(
      await procHandler.handle(create(FileReadRequestSchema, { path: '/proc/version' })),
    );
    expect(Buffer.from(r.data).toString()).toMatch(/^Linux version/);
    expect(r.eof).toBe(true);
    expect(r.totalSize).toBe(0n);
  });

  it('should follow a link in the last component, even one another user owns, when it stays inside the roots', async () => {
    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'f.txt'), 'linked');
    await symlink('sub/f.txt', join(dir, 'link'));
    await symlink('sub', join(dir, 'dirlink'));
    if (process.getuid?.() === 0) {
      await lchown(join(dir, 'link'), 65534, 65534);
      await lchown(join(dir, 'dirlink'), 65534, 65534);
    }
    expect(Buffer.from((await read(join(dir, 'link'))).data).toString()).toBe('linked');
    expect(Buffer.from((await read(join(dir, 'dirlink', 'f.txt'))).data).toString()).toBe('linked');
  });

  it('should answer PATH_NOT_ALLOWED when a link leads outside the roots', async () => {
    await symlink('/etc/hostname', join(dir, 'out'));
    await expect(read(join(dir, 'out'))).rejects.toMatchObject({
      code: ErrorCode.PATH_NOT_ALLOWED,
      message: expect.stringContaining('outside the allowed roots'),
    });
  });
});
