// Directories through the real agent executable (issue 20 item 3): file.list pages through a
// directory of 100,000 entries, sorted, each exactly once; file.mkdir, file.rename and
// file.delete act by the write rules, and a delete outside files.roots, of "/", of a root, or
// through a symbolic link that leaves the roots is refused with nothing removed.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  FileDeleteRequestSchema,
  FileListRequestSchema,
  FileMkdirRequestSchema,
  FileRenameRequestSchema,
  FileType,
  type FileListResponse,
} from '@lq/proto';
import { AgentRequestError, type AgentClient } from '@lq/host';
import { startAgent, type RunningAgent } from '../support/agent-process.js';

const MiB = 1024 * 1024;

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

describe('guest directories through the agent executable', () => {
  let agent: RunningAgent;
  let client: AgentClient;
  let root: string;
  let outside: string;

  const list = (path: string, cursor = '', limit = 0): Promise<FileListResponse> =>
    client.call(
      { case: 'fileList', value: create(FileListRequestSchema, { path, cursor, limit }) },
      'fileListResponse',
    );
  const del = (path: string, recursive = false) =>
    client.call(
      { case: 'fileDelete', value: create(FileDeleteRequestSchema, { path, recursive }) },
      'fileDeleteResponse',
    );
  const mkdir = (path: string, init: { mode?: number; parents?: boolean } = {}) =>
    client.call(
      { case: 'fileMkdir', value: create(FileMkdirRequestSchema, { path, ...init }) },
      'fileMkdirResponse',
    );
  const rename = (from: string, to: string, overwrite = false) =>
    client.call(
      { case: 'fileRename', value: create(FileRenameRequestSchema, { from, to, overwrite }) },
      'fileRenameResponse',
    );

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'lq-tree-root-'));
    outside = mkdtempSync(join(tmpdir(), 'lq-tree-outside-'));
    agent = await startAgent({
      files: { roots: [root], list_page_entries: 1000, list_max_entries: 5000 },
      telemetry_interval_ms: 0,
    });
    client = await agent.client();
  });

  afterAll(async () => {
    await agent?.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('should page through 100,000 entries sorted, each exactly once, with a cursor', async () => {
    const dir = join(root, 'many');
    mkdirSync(dir);
    // 100,000 empty files, made by the shell in a few seconds (printf | xargs touch).
    execFileSync('sh', ['-c', 'seq -f "f%06g" 0 99999 | xargs touch'], {
      cwd: dir,
      stdio: 'ignore',
    });
    expect(readdirSync(dir)).toHaveLength(100_000);
    const before = agent.memory();
    const seen: string[] = [];
    let cursor = '';
    let pages = 0;
    do {
      const page = await list(dir, cursor, 5000);
      pages++;
      expect(Number(page.totalEntries)).toBe(100_000);
      expect(page.entries.length).toBeLessThanOrEqual(5000);
      seen.push(...page.entries.map((e) => e.name));
      cursor = page.nextCursor;
    } while (cursor !== '');
    const after = agent.memory();
    expect(pages).toBe(20);
    expect(seen).toHaveLength(100_000);
    expect(new Set(seen).size).toBe(100_000);
    expect(seen).toEqual([...seen].sort());
    expect(seen[0]).toBe('f000000');
    expect(seen[99_999]).toBe('f099999');
    // Memory is printed, not asserted (bench/file-list.ts measures it against page sizes).
    console.log(
      `file.list 100,000 entries in ${pages} pages: agent VmHWM ${(before.hwm / MiB).toFixed(1)} → ${(after.hwm / MiB).toFixed(1)} MiB`,
    );
  }, 180_000);

  it('should describe entries without following links, with the default page size', async () => {
    const dir = join(root, 'kinds');
    mkdirSync(dir);
    writeFileSync(join(dir, 'b.txt'), 'twelve bytes', { mode: 0o640 });
    mkdirSync(join(dir, 'a-dir'));
    symlinkSync(outside, join(dir, 'c-link'));
    const page = await list(dir);
    expect(page.entries.map((e) => [e.name, FileType[e.type]])).toEqual([
      ['a-dir', 'DIRECTORY'],
      ['b.txt', 'REGULAR'],
      ['c-link', 'SYMLINK'],
    ]);
    expect(page.entries[1]).toMatchObject({ size: 12n, mode: 0o640, uid: process.getuid!() });
    expect(page.entries[2]!.linkTarget).toBe(outside);
    expect(page.nextCursor).toBe('');
    expect(page.resolvedPath).toBe(dir);
  });

  it('should refuse to list outside the roots, through a link leaving them, or a file', async () => {
    await expectAgentError(list(outside), ErrorCode.PATH_NOT_ALLOWED, /outside the allowed roots/);
    symlinkSync(outside, join(root, 'to-outside'));
    await expectAgentError(
      list(join(root, 'to-outside')),
      ErrorCode.PATH_NOT_ALLOWED,
      /resolves to .* outside the allowed roots/,
    );
    writeFileSync(join(root, 'plain'), 'x');
    await expectAgentError(list(join(root, 'plain')), ErrorCode.INVALID_REQUEST, /not a directory/);
    await expectAgentError(list(root, '', 5001), ErrorCode.TOO_LARGE, /files.list_max_entries/);
  });

  it('should create directories, with parents and a mode, and refuse an existing one', async () => {
    const made = await mkdir(join(root, 'p/q/r'), { parents: true, mode: 0o750 });
    expect(made.created).toEqual([join(root, 'p'), join(root, 'p/q'), join(root, 'p/q/r')]);
    expect(statSync(join(root, 'p/q/r')).mode & 0o7777).toBe(0o750);
    expect((await mkdir(join(root, 'p/q/r'), { parents: true })).created).toEqual([]);
    await expectAgentError(mkdir(join(root, 'p')), ErrorCode.ALREADY_EXISTS, /exists already/);
    await expectAgentError(
      mkdir(join(outside, 'x')),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    expect(existsSync(join(outside, 'x'))).toBe(false);
  });

  it('should rename, refuse to replace without overwrite, and never replace a directory', async () => {
    writeFileSync(join(root, 'r1'), 'one');
    writeFileSync(join(root, 'r2'), 'two');
    await expectAgentError(
      rename(join(root, 'r1'), join(root, 'r2')),
      ErrorCode.ALREADY_EXISTS,
      /set overwrite/,
    );
    await rename(join(root, 'r1'), join(root, 'r2'), true);
    expect(existsSync(join(root, 'r1'))).toBe(false);
    mkdirSync(join(root, 'rdir'));
    await expectAgentError(
      rename(join(root, 'r2'), join(root, 'rdir'), true),
      ErrorCode.ALREADY_EXISTS,
      /never replaces a directory/,
    );
    await rename(join(root, 'r2'), join(root, 'rdir/moved'));
    expect(existsSync(join(root, 'rdir/moved'))).toBe(true);
    await expectAgentError(
      rename(join(root, 'rdir/moved'), join(outside, 'stolen')),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    expect(existsSync(join(root, 'rdir/moved'))).toBe(true);
  });

  it('should delete files and empty directories, and a tree only when recursive', async () => {
    mkdirSync(join(root, 'tree/a/b'), { recursive: true });
    writeFileSync(join(root, 'tree/a/b/f'), 'x');
    writeFileSync(join(root, 'tree/g'), 'y');
    await expectAgentError(del(join(root, 'tree')), ErrorCode.INVALID_REQUEST, /not empty/);
    expect(existsSync(join(root, 'tree/a/b/f'))).toBe(true);
    expect(Number((await del(join(root, 'tree/g'))).removed)).toBe(1);
    expect(Number((await del(join(root, 'tree'), true)).removed)).toBe(4);
    expect(existsSync(join(root, 'tree'))).toBe(false);
    await expectAgentError(del(join(root, 'tree')), ErrorCode.NOT_FOUND, /does not exist/);
  });

  it('should refuse to delete outside the roots, "/", a root, or through a link leaving them', async () => {
    writeFileSync(join(outside, 'precious'), 'keep me');
    mkdirSync(join(outside, 'dir'), { recursive: true });
    writeFileSync(join(outside, 'dir/inner'), 'keep me too');
    await expectAgentError(
      del(join(outside, 'precious')),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    await expectAgentError(del('/'), ErrorCode.PATH_NOT_ALLOWED, /refusing to delete "\/"|outside/);
    await expectAgentError(del(root, true), ErrorCode.PATH_NOT_ALLOWED, /allowed roots/);
    // root/escape -> outside: the parent of root/escape/precious resolves outside the roots.
    symlinkSync(outside, join(root, 'escape'));
    await expectAgentError(
      del(join(root, 'escape/precious')),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    await expectAgentError(
      del(join(root, 'escape/dir'), true),
      ErrorCode.PATH_NOT_ALLOWED,
      /outside the allowed roots/,
    );
    expect(existsSync(join(outside, 'precious'))).toBe(true);
    expect(existsSync(join(outside, 'dir/inner'))).toBe(true);
    // A recursive delete of a tree holding a link removes the link, never what it points to.
    mkdirSync(join(root, 'holder'));
    symlinkSync(outside, join(root, 'holder/link'));
    await del(join(root, 'holder'), true);
    expect(existsSync(join(root, 'holder'))).toBe(false);
    expect(existsSync(join(outside, 'dir/inner'))).toBe(true);
    // Deleting the link itself removes the link only.
    await del(join(root, 'escape'));
    expect(() => lstatSync(join(root, 'escape'))).toThrow();
    expect(existsSync(join(outside, 'precious'))).toBe(true);
  });
});
