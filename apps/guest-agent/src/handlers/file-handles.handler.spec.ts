import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { type AgentPayload, FileHandleReadRequestSchema, type FileReadResponse } from '@lq/proto';
import { defaultConfig } from '../config.js';
import type { AgentConfig } from '../config.js';
import { FileHandleTable, type OpenFile } from '../files/file-handles.js';
import { FileHandleReadHandler } from './file-handles.handler.js';

const MiB = 1024 * 1024;

function asRead(payload: AgentPayload | undefined): FileReadResponse | undefined {
  if (payload === undefined) {
    return undefined;
  }
  if (payload.case !== 'fileHandleReadResponse') {
    throw new Error(`unexpected payload ${payload.case}`);
  }
  return payload.value;
}

describe('FileHandleReadHandler: reads made at once or through the thread pool', () => {
  let dir: string;
  let config: AgentConfig;
  let table: FileHandleTable;
  let file: OpenFile;
  /** What the handler's clock says: each read "takes" readMs. */
  let clock: number;
  let readMs: number;

  const handler = () =>
    new FileHandleReadHandler(config, table, () => {
      clock += readMs; // asked before and after each read: they are readMs apart
      return clock;
    });
  const request = (length: number, offset: number) =>
    create(FileHandleReadRequestSchema, { handle: file.id, length, offset: BigInt(offset) });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lq-handle-read-'));
    const path = join(dir, 'data');
    await writeFile(path, Buffer.alloc(2 * MiB, 7));
    config = defaultConfig();
    config.files.roots = [dir];
    table = new FileHandleTable({ maxOpen: 4, idleTimeoutMs: 60_000 });
    const handle = await open(path, 'r');
    file = table.add(
      table.reserve(),
      { path, handle, stat: await handle.stat(), local: true },
      undefined,
    );
    clock = 0;
    readMs = 0.1;
  });

  afterEach(async () => {
    await table.closeAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('should answer a 1 MiB read of a local file at once while its reads are quick', () => {
    const reply = asRead(handler().handleNow(request(MiB, 0)));
    expect(reply?.data.length).toBe(MiB);
    expect(reply?.data.every((b) => b === 7)).toBe(true);
    expect(file.readsWait).toBe(false);
  });

  it('should send a handle through the thread pool after one of its reads was slow', async () => {
    const h = handler();
    readMs = config.files.sync_read_slow_ms + 1;
    // The slow read is still answered; it marks the handle.
    expect(asRead(h.handleNow(request(4096, 0)))?.data.length).toBe(4096);
    expect(file.readsWait).toBe(true);
    readMs = 0.1;
    expect(h.handleNow(request(4096, 4096))).toBeUndefined();
    expect(h.handleNow(request(MiB, 0))).toBeUndefined();
    // handle() (the pool) reads it.
    const pooled = asRead(await h.handle(request(MiB, MiB)));
    expect(pooled?.data.length).toBe(MiB);
    expect(pooled?.eof).toBe(false);
  });

  it('should keep reads over 64 KiB off the agent thread with sync_read_slow_ms 0, small ones on it', () => {
    config.files.sync_read_slow_ms = 0;
    readMs = 1000;
    const h = handler();
    expect(h.handleNow(request(64 * 1024 + 1, 0))).toBeUndefined();
    expect(asRead(h.handleNow(request(64 * 1024, 0)))?.data.length).toBe(64 * 1024);
    // 0 turns the slowness check off as well.
    expect(file.readsWait).toBe(false);
  });

  it('should never read a file a server holds at once', () => {
    const remote = { ...file, local: false };
    const h = new FileHandleReadHandler(config, {
      useNow: () => remote,
    } as unknown as FileHandleTable);
    expect(h.handleNow(request(4096, 0))).toBeUndefined();
  });
});
