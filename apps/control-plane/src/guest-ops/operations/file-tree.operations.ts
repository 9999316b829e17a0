import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  FileDeleteRequestSchema,
  FileListRequestSchema,
  FileMkdirRequestSchema,
  FileRenameRequestSchema,
  GUEST_OPERATION_TABLE,
  type FileDeleteResponse,
  type FileEntry,
  type FileListResponse,
  type FileMkdirResponse,
  type FileRenameResponse,
} from '@lq/proto';
import type { FileEntryView, FileListView } from '@lq/api';
import { fileLimitsOf } from '../../access/vm-access.service.js';
import { connectBinding } from '../connect-binding.js';
import type { GuestOperationSpec } from '../guest-operation.js';
import { FILE_TYPES } from './file-stat.operation.js';
import { checkPath, invalid } from './validate.js';

// Guest directories: list, create, delete, rename (issue 20 item 3). Reads need
// guest.file.read, changes guest.file.write; a binding's file_paths hold every path named.

/** The most entries a caller may ask for in one page (the agent caps it too). */
export const FILE_LIST_MAX_LIMIT = 100_000;

export interface FileListInput {
  path: string;
  cursor?: string;
  /** 0 or absent: the agent's default page. */
  limit?: number;
}

function entryView(e: FileEntry): FileEntryView {
  return {
    name: e.name,
    type: FILE_TYPES[e.type],
    size: Number(e.size),
    mode: e.mode.toString(8).padStart(4, '0'),
    uid: e.uid,
    gid: e.gid,
    owner: e.owner || null,
    group: e.group || null,
    modified_at: e.modifiedAt ? timestampDate(e.modifiedAt).toISOString() : null,
    link_target: e.linkTarget || null,
  };
}

/** A page of a directory as REST shows it. */
export function fileListView(vmId: string, path: string, r: FileListResponse): FileListView {
  return {
    vm_id: vmId,
    path,
    resolved_path: r.resolvedPath,
    entries: r.entries.map(entryView),
    next_cursor: r.nextCursor || null,
    total_entries: Number(r.totalEntries),
  };
}

/** One page of a guest directory's entries, sorted by name. */
export const FILE_LIST: GuestOperationSpec<FileListInput, FileListResponse> = {
  name: 'file.list',
  permission: 'guest.file.read',
  prepare: ({ path, cursor = '', limit = 0 }, env) => {
    checkPath(env.config, path);
    if (!Number.isInteger(limit) || limit < 0 || limit > FILE_LIST_MAX_LIMIT) {
      throw invalid('limit', `must be a whole number between 1 and ${FILE_LIST_MAX_LIMIT}`);
    }
    if (cursor.includes('/') || Buffer.byteLength(cursor) > 1020) {
      throw invalid('cursor', 'must be the next_cursor of a previous page');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path, cursor: cursor || undefined, limit: limit || undefined },
      file: { path },
      dispatch: (d) =>
        d.send(
          'file.list',
          {
            case: 'fileList',
            value: create(FileListRequestSchema, {
              path,
              cursor,
              limit,
              limits: fileLimitsOf(d.grant),
            }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({
        status: 'ok',
        params: { entries: r.entries.length, more: r.nextCursor !== '' },
      }),
    };
  },
  connect: connectBinding({
    method: 'listGuestFiles',
    input: (req) => ({
      vmId: req.vmId,
      input: { path: req.path, cursor: req.cursor, limit: req.limit },
    }),
    output: (list) => ({ list }),
  }),
};

export interface FileMkdirInput {
  path: string;
  mode?: number;
  parents?: boolean;
}

/** Creates a guest directory (with parents, like mkdir -p). */
export const FILE_MKDIR: GuestOperationSpec<FileMkdirInput, FileMkdirResponse> = {
  name: 'file.mkdir',
  permission: 'guest.file.write',
  prepare: ({ path, mode, parents = false }, env) => {
    checkPath(env.config, path);
    if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
      throw invalid('mode', 'must be permission bits between 0000 and 7777 (octal)');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path, mode: mode?.toString(8), parents: parents || undefined },
      file: { path, mode },
      dispatch: (d) =>
        d.send(
          'file.mkdir',
          {
            case: 'fileMkdir',
            value: create(FileMkdirRequestSchema, {
              path,
              mode,
              parents,
              limits: fileLimitsOf(d.grant),
            }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({ status: 'ok', params: { created: r.created.length } }),
    };
  },
  connect: connectBinding({
    method: 'makeGuestDirectory',
    input: (req) => ({
      vmId: req.vmId,
      input: { path: req.path, mode: req.mode, parents: req.parents },
    }),
    output: (r) => ({ created: r.created }),
  }),
};

export interface FileDeleteInput {
  path: string;
  recursive?: boolean;
}

/** Deletes a guest file, link or empty directory; a whole tree only with recursive. */
export const FILE_DELETE: GuestOperationSpec<FileDeleteInput, FileDeleteResponse> = {
  name: 'file.delete',
  permission: 'guest.file.write',
  prepare: ({ path, recursive = false }, env) => {
    checkPath(env.config, path);
    if (path === '/') {
      throw invalid('path', 'must not be "/"');
    }
    // A tree takes longer than one request: the table's default, within the configured maximum.
    const timeoutMs = env.timeoutMs(
      undefined,
      Math.min(
        GUEST_OPERATION_TABLE['file.delete'].defaultTimeoutMs / 1000,
        env.config.guestTimeoutMaxSeconds,
      ),
    );
    return {
      params: { path, recursive: recursive || undefined },
      file: { path },
      dispatch: (d) =>
        d.send(
          'file.delete',
          {
            case: 'fileDelete',
            value: create(FileDeleteRequestSchema, {
              path,
              recursive,
              limits: fileLimitsOf(d.grant),
            }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({ status: 'ok', params: { removed: Number(r.removed) } }),
    };
  },
  connect: connectBinding({
    method: 'deleteGuestFile',
    input: (req) => ({ vmId: req.vmId, input: { path: req.path, recursive: req.recursive } }),
    output: (r) => ({ removed: r.removed }),
  }),
};

export interface FileRenameInput {
  from: string;
  to: string;
  overwrite?: boolean;
}

/** Renames or moves a guest file or directory. */
export const FILE_RENAME: GuestOperationSpec<FileRenameInput, FileRenameResponse> = {
  name: 'file.rename',
  permission: 'guest.file.write',
  prepare: ({ from, to, overwrite = false }, env) => {
    checkPath(env.config, from, 'from');
    checkPath(env.config, to, 'to');
    if (from === to) {
      throw invalid('to', 'must differ from from');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { from, to, overwrite: overwrite || undefined },
      // The binding's file_paths must hold both ends.
      file: { path: from, also: [to] },
      dispatch: (d) =>
        d.send(
          'file.rename',
          {
            case: 'fileRename',
            value: create(FileRenameRequestSchema, {
              from,
              to,
              overwrite,
              limits: fileLimitsOf(d.grant),
            }),
          },
          timeoutMs,
        ),
      outcome: () => ({ status: 'ok' }),
    };
  },
  connect: connectBinding({
    method: 'renameGuestFile',
    input: (req) => ({
      vmId: req.vmId,
      input: { from: req.from, to: req.to, overwrite: req.overwrite },
    }),
    output: () => ({}),
  }),
};
