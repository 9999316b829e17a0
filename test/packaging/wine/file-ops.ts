// Drives the Windows platform's file handlers — the very modules the agent runs on a Windows
// guest — against a real Windows filesystem API, Wine's: compiled by windows.spec.ts with bun
// for windows-amd64 and run under Wine, it makes each request below under the root given as
// its argument and prints one JSON line per step ({ step, ok } or { step, error, message }).
// The agent itself cannot be served under Wine (WINDOWS.md: Wine's serial reads), so this is
// how a write and a read are exercised through Windows semantics here.
import { create } from '@bufbuild/protobuf';
import {
  FileDeleteRequestSchema,
  FileListRequestSchema,
  FileMkdirRequestSchema,
  FileReadRequestSchema,
  FileRenameRequestSchema,
  FileStatRequestSchema,
  FileWriteRequestSchema,
} from '@lq/proto';
import { defaultConfig } from '../../../apps/guest-agent/src/config.js';
import { UserResolver } from '../../../apps/guest-agent/src/exec/user-resolver.js';
import { FileLimitPolicies } from '../../../apps/guest-agent/src/files/file-limits.js';
import { UploadStore } from '../../../apps/guest-agent/src/files/upload-store.js';
import { FileDeleteHandler } from '../../../apps/guest-agent/src/handlers/file-delete.handler.js';
import { FileListHandler } from '../../../apps/guest-agent/src/handlers/file-list.handler.js';
import { FileMkdirHandler } from '../../../apps/guest-agent/src/handlers/file-mkdir.handler.js';
import { FileReadHandler } from '../../../apps/guest-agent/src/handlers/file-read.handler.js';
import { FileRenameHandler } from '../../../apps/guest-agent/src/handlers/file-rename.handler.js';
import { FileStatHandler } from '../../../apps/guest-agent/src/handlers/file-stat.handler.js';
import { FileWriteHandler } from '../../../apps/guest-agent/src/handlers/file-write.handler.js';
import { WINDOWS_DEFAULTS } from '../../../apps/guest-agent/src/platform/platform-defaults.js';
import { windowsPlatform } from '../../../apps/guest-agent/src/platform/windows.platform.js';

const root = process.argv[2];
if (!root) {
  process.stderr.write('usage: file-ops.exe ROOT (a Windows path, e.g. Z:\\tmp\\x)\n');
  process.exit(2);
}
const config = WINDOWS_DEFAULTS.apply(defaultConfig());
config.files.roots = [root];
// Wine has no PowerShell; the owner lookup has its own tests (windows-owners.spec.ts).
config.windows.owner_lookup = false;
const paths = windowsPlatform.pathPolicy(config);
const limits = new FileLimitPolicies(undefined, paths);
const users = new UserResolver(config);
const owners = windowsPlatform.fileOwners(config);
const write = new FileWriteHandler(
  config,
  new UploadStore(config.files, undefined, paths),
  paths,
  limits,
);
const read = new FileReadHandler(config, paths, limits);
const mkdir = new FileMkdirHandler(paths, limits);
const rename = new FileRenameHandler(paths, limits);
const del = new FileDeleteHandler(paths, limits);
const stat = new FileStatHandler(paths, limits, users, owners);
const list = new FileListHandler(config, paths, limits, users, owners);

// Bytes as text (a Buffer reaches the replacer already turned into { type, data } by toJSON).
const json = (_key: string, v: unknown) => {
  if (typeof v === 'bigint') {
    return Number(v);
  }
  const buffer = v as { type?: unknown; data?: unknown };
  if (buffer?.type === 'Buffer' && Array.isArray(buffer.data)) {
    return Buffer.from(buffer.data as number[]).toString();
  }
  return v instanceof Uint8Array ? Buffer.from(v).toString() : v;
};

async function step(name: string, run: () => Promise<{ value?: unknown }>): Promise<void> {
  let line: object;
  try {
    line = { step: name, ok: (await run()).value };
  } catch (err) {
    line = { step: name, error: (err as { code?: number }).code, message: (err as Error).message };
  }
  process.stdout.write(`${JSON.stringify(line, json)}\n`);
}

const bytes = (s: string) => new TextEncoder().encode(s);
const at = (...names: string[]) => [root, ...names].join('\\');
const writeReq = (path: string, data: string, more: object = {}) =>
  create(FileWriteRequestSchema, { path, data: bytes(data), ...more });

await step('mkdir', () =>
  mkdir.handle(create(FileMkdirRequestSchema, { path: at('a', 'b'), parents: true })),
);
await step('write', () =>
  write.handle(writeReq(at('a', 'b', 'x.txt'), 'hello ', { create: true })),
);
await step('append', () => write.handle(writeReq(at('a', 'b', 'x.txt'), 'wine', { append: true })));
await step('upload', () =>
  write.handle(writeReq(at('a', 'b', 'y.txt'), 'atomic ', { uploadId: 'u1' })),
);
await step('commit', () =>
  write.handle(
    writeReq(at('a', 'b', 'y.txt'), 'upload', { uploadId: 'u1', offset: 7n, commit: true }),
  ),
);
await step('readX', () =>
  read.handle(create(FileReadRequestSchema, { path: at('a', 'b', 'x.txt') })),
);
await step('readY', () =>
  read.handle(create(FileReadRequestSchema, { path: at('a', 'b', 'y.txt') })),
);
await step('stat', () =>
  stat.handle(create(FileStatRequestSchema, { path: at('a', 'b', 'y.txt') })),
);
await step('list', () => list.handle(create(FileListRequestSchema, { path: at('a', 'b') })));
await step('rename', () =>
  rename.handle(
    create(FileRenameRequestSchema, { from: at('a', 'b', 'x.txt'), to: at('a', 'z.txt') }),
  ),
);
await step('restricted', () =>
  write.handle(
    writeReq(at('a', 'r.txt'), 'no', { create: true, limits: { roots: [], noSetid: true } }),
  ),
);
await step('stream', () =>
  write.handle(writeReq(`${at('a', 'z.txt')}:hidden`, 'no', { create: true })),
);
await step('device', () => write.handle(writeReq(at('a', 'NUL'), 'no', { create: true })));
// `esc` is a link the test made to a directory outside the root.
await step('readEscape', () =>
  read.handle(create(FileReadRequestSchema, { path: at('esc', 'secret.txt') })),
);
await step('writeEscape', () =>
  write.handle(writeReq(at('esc', 'new.txt'), 'no', { create: true })),
);
await step('deleteEscape', () =>
  del.handle(create(FileDeleteRequestSchema, { path: at('esc', 'secret.txt') })),
);
await step('delete', () =>
  del.handle(create(FileDeleteRequestSchema, { path: at('a'), recursive: true })),
);
await step('deleteRoot', () =>
  del.handle(create(FileDeleteRequestSchema, { path: root, recursive: true })),
);
