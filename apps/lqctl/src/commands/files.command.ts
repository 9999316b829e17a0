import { bool, parseMode, parseRemotePath, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { formatBytes } from '../output/progress.js';
import { jsonText } from '../output/stream.js';
import { formatTable, type Cell } from '../output/table.js';
import { seg, type Command } from './context.js';
import type {
  DirectoryCreatedView,
  FileDeletedView,
  FileEntryView,
  FileListView,
  FileRenamedView,
} from '@lq/api';

/** Entries asked for per request while `ls` pages through a directory. */
const PAGE = 1000;

function remote(cmd: ParsedCommand, index: number, what: string): { vm: string; path: string } {
  const text = cmd.positionals[index] ?? '';
  const r = parseRemotePath(text);
  if (!r) {
    throw new UsageError(`${what} must be VM:/absolute/path (got ${JSON.stringify(text)})`);
  }
  return r;
}

const SUFFIX: Partial<Record<FileEntryView['type'], string>> = {
  directory: '/',
  symlink: '@',
  fifo: '|',
  socket: '=',
};

/** `ls -l`'s columns: mode, owner, group, size, modified, name (→ link target). */
export function entriesTable(entries: readonly FileEntryView[]): string {
  return formatTable(
    [
      { header: 'MODE' },
      { header: 'OWNER' },
      { header: 'GROUP' },
      { header: 'SIZE', align: 'right' },
      { header: 'MODIFIED' },
      { header: 'NAME' },
    ],
    entries.map((e): Cell[] => [
      `${e.type === 'directory' ? 'd' : e.type === 'symlink' ? 'l' : '-'}${e.mode}`,
      e.owner ?? String(e.uid),
      e.group ?? String(e.gid),
      e.type === 'directory' ? '-' : formatBytes(e.size),
      e.modified_at?.replace(/\.\d{3}Z$/, 'Z'),
      `${e.name}${e.link_target ? ` -> ${e.link_target}` : ''}`,
    ]),
  );
}

/** lqctl ls VM:/dir: every entry, paging through the API's cursor. */
export const lsCommand: Command = async (ctx, cmd) => {
  const { vm, path } = remote(cmd, 0, 'the directory');
  const long = bool(cmd, 'long');
  const entries: FileEntryView[] = [];
  let cursor: string | null = null;
  let total: number;
  do {
    const page: FileListView = await ctx.client.json<FileListView>(
      'GET',
      `/api/vms/${seg(vm)}/files/list`,
      { query: { path, limit: PAGE, cursor: cursor ?? undefined } },
    );
    total = page.total_entries;
    if (ctx.json) {
      entries.push(...page.entries);
    } else if (long) {
      entries.push(...page.entries);
    } else {
      // Names only: printed as they come, nothing kept.
      ctx.stdout.write(page.entries.map((e) => `${e.name}${SUFFIX[e.type] ?? ''}\n`).join(''));
    }
    cursor = page.next_cursor;
  } while (cursor);
  if (ctx.json) {
    ctx.stdout.write(jsonText({ vm_id: vm, path, total_entries: total, entries }));
  } else if (long) {
    ctx.stdout.write(entriesTable(entries));
  }
  return Exit.OK;
};

/** lqctl rm VM:/path [-r] */
export const rmCommand: Command = async (ctx, cmd) => {
  const { vm, path } = remote(cmd, 0, 'the path');
  const r = await ctx.client.json<FileDeletedView>('DELETE', `/api/vms/${seg(vm)}/files`, {
    query: { path, recursive: bool(cmd, 'recursive') ? 'true' : undefined },
  });
  ctx.stdout.write(
    ctx.json ? jsonText(r) : `removed ${r.path}${r.removed > 1 ? ` (${r.removed} entries)` : ''}\n`,
  );
  return Exit.OK;
};

/** lqctl mkdir VM:/path [-p] [--mode 0755] */
export const mkdirCommand: Command = async (ctx, cmd) => {
  const { vm, path } = remote(cmd, 0, 'the directory');
  const mode = str(cmd, 'mode');
  const r = await ctx.client.json<DirectoryCreatedView>('POST', `/api/vms/${seg(vm)}/files/mkdir`, {
    json: {
      path,
      parents: bool(cmd, 'parents') || undefined,
      mode: mode === undefined ? undefined : parseMode(mode),
    },
  });
  ctx.stdout.write(
    ctx.json ? jsonText(r) : r.created.map((p) => `created ${p}\n`).join('') || `exists ${path}\n`,
  );
  return Exit.OK;
};

/** lqctl mv VM:/from VM:/to [--force] (within one VM). */
export const mvCommand: Command = async (ctx, cmd) => {
  const from = remote(cmd, 0, 'the source');
  const to = remote(cmd, 1, 'the destination');
  if (from.vm !== to.vm) {
    throw new UsageError('mv renames within one VM; use lqctl cp to copy between machines');
  }
  const r = await ctx.client.json<FileRenamedView>(
    'POST',
    `/api/vms/${seg(from.vm)}/files/rename`,
    {
      json: { from: from.path, to: to.path, overwrite: bool(cmd, 'force') || undefined },
    },
  );
  ctx.stdout.write(ctx.json ? jsonText(r) : `renamed ${r.from} -> ${r.to}\n`);
  return Exit.OK;
};
