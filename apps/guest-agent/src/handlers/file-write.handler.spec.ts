import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  type AgentPayload,
  ErrorCode,
  FileWriteRequestSchema,
  type FileWriteResponse,
} from '@lq/proto';
import { defaultConfig } from '../config.js';
import { UploadStore } from '../files/upload-store.js';
import { FileWriteHandler } from './file-write.handler.js';

const isRoot = process.getuid?.() === 0;

function asWrite(payload: AgentPayload): FileWriteResponse {
  if (payload.case !== 'fileWriteResponse') {
    throw new Error(`unexpected payload ${payload.case}`);
  }
  return payload.value;
}

describe('FileWriteHandler', () => {
  let dir: string;
  let file: string;
  let uploads: UploadStore;
  let handler: FileWriteHandler;

  const write = async (
    init: MessageInitShape<typeof FileWriteRequestSchema>,
  ): Promise<FileWriteResponse> =>
    asWrite(await handler.handle(create(FileWriteRequestSchema, { path: file, ...init })));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lq-write-'));
    file = join(dir, 'f.txt');
    const config = defaultConfig();
    config.files.roots = [dir];
    config.files.chunk_max_bytes = 16;
    uploads = new UploadStore(config.files);
    handler = new FileWriteHandler(config, uploads);
  });

  afterEach(async () => {
    await uploads.closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('should create the file with the given mode when create is set', async () => {
    const r = await write({ data: Buffer.from('hello'), create: true, mode: 0o604 });
    expect(r).toMatchObject({ bytesWritten: 5n, size: 5n, committed: false });
    expect(await readFile(file, 'utf8')).toBe('hello');
    expect((await stat(file)).mode & 0o7777).toBe(0o604);
  });

  it('should answer NOT_FOUND when the file is missing and create is not set', async () => {
    await expect(write({ data: Buffer.from('x') })).rejects.toMatchObject({
      code: ErrorCode.NOT_FOUND,
    });
  });

  it('should write at the offset in place when the file exists', async () => {
    await writeFile(file, 'abcdefgh', { mode: 0o600 });
    const r = await write({ data: Buffer.from('XY'), offset: 3n, create: true, mode: 0o777 });
    expect(r).toMatchObject({ bytesWritten: 2n, size: 8n });
    expect(await readFile(file, 'utf8')).toBe('abcXYfgh');
    // The mode applies to files the request creates, not to existing ones.
    expect((await stat(file)).mode & 0o7777).toBe(0o600);
  });

  it('should extend the file when the offset is past its end', async () => {
    await writeFile(file, 'ab');
    const r = await write({ data: Buffer.from('Z'), offset: 4n });
    expect(r.size).toBe(5n);
    expect(await readFile(file)).toEqual(Buffer.from('ab\0\0Z'));
  });

  it('should append and ignore the offset when append is set', async () => {
    await writeFile(file, 'abc');
    const r = await write({ data: Buffer.from('de'), offset: 0n, append: true });
    expect(r).toMatchObject({ bytesWritten: 2n, size: 5n });
    expect(await readFile(file, 'utf8')).toBe('abcde');
  });

  it('should truncate before writing when truncate is set', async () => {
    await writeFile(file, 'a long old content');
    const r = await write({ data: Buffer.from('new'), truncate: true });
    expect(r.size).toBe(3n);
    expect(await readFile(file, 'utf8')).toBe('new');
  });

  (isRoot ? it : it.skip)('should change the owner when uid and gid are given', async () => {
    await writeFile(file, 'x');
    await write({ data: Buffer.from('y'), uid: 4321, gid: 8765 });
    const st = await stat(file);
    expect([st.uid, st.gid]).toEqual([4321, 8765]);
  });

  it('should answer TOO_LARGE naming files.chunk_max_bytes when data exceeds it', async () => {
    await expect(write({ data: Buffer.alloc(17), create: true })).rejects.toMatchObject({
      code: ErrorCode.TOO_LARGE,
      message: expect.stringContaining('files.chunk_max_bytes (16)'),
    });
  });

  it('should answer INVALID_REQUEST when the path is a directory', async () => {
    await mkdir(join(dir, 'd'));
    await expect(write({ path: join(dir, 'd'), data: Buffer.from('x') })).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('is a directory'),
    });
  });

  it('should answer INVALID_REQUEST when commit is set without upload_id', async () => {
    await expect(write({ data: Buffer.from('x'), commit: true })).rejects.toMatchObject({
      code: ErrorCode.INVALID_REQUEST,
      message: expect.stringContaining('upload_id'),
    });
  });

  it('should answer PATH_NOT_ALLOWED when the path is outside the roots', async () => {
    await expect(
      write({ path: '/etc/lq-should-not-exist', data: Buffer.from('x'), create: true }),
    ).rejects.toMatchObject({ code: ErrorCode.PATH_NOT_ALLOWED });
  });

  it('should replace the file atomically when an upload is committed', async () => {
    await writeFile(file, 'old');
    const parts = ['0123456789abcdef', '0123456789ABCDEF', 'tail'];
    const acks = await Promise.all(
      [2, 1].map((i) =>
        write({ uploadId: 'job-7', offset: BigInt(i * 16), data: Buffer.from(parts[i] ?? '') }),
      ),
    );
    expect(acks.every((a) => !a.committed)).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('old');
    const done = await write({
      uploadId: 'job-7',
      offset: 0n,
      data: Buffer.from(parts[0] ?? ''),
      commit: true,
      mode: 0o640,
    });
    expect(done).toMatchObject({ bytesWritten: 16n, size: 36n, committed: true });
    expect(await readFile(file, 'utf8')).toBe(parts.join(''));
    expect((await stat(file)).mode & 0o7777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['f.txt']);
  });

  it('should answer INVALID_REQUEST when append is combined with upload_id', async () => {
    await expect(
      write({ uploadId: 'u', data: Buffer.from('x'), append: true }),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_REQUEST });
  });
});
