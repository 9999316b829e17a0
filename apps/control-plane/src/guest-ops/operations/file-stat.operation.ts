import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { FileStatRequestSchema, FileType, type FileStatResponse } from '@lq/proto';
import type { FileStatView } from '@lq/api';
import { fileLimitsOf } from '../../access/vm-access.service.js';
import { connectBinding } from '../connect-binding.js';
import type { GuestOperationSpec } from '../guest-operation.js';
import { checkPath } from './validate.js';

export interface FileStatInput {
  path: string;
  /** Describe a symbolic link itself, not what it points to. */
  noFollow?: boolean;
}

/** The protocol's file types as REST names them. */
export const FILE_TYPES: Record<FileType, FileStatView['type']> = {
  [FileType.UNSPECIFIED]: 'other',
  [FileType.REGULAR]: 'file',
  [FileType.DIRECTORY]: 'directory',
  [FileType.SYMLINK]: 'symlink',
  [FileType.FIFO]: 'fifo',
  [FileType.SOCKET]: 'socket',
  [FileType.CHAR_DEVICE]: 'char_device',
  [FileType.BLOCK_DEVICE]: 'block_device',
};

/** A file's metadata as REST shows it (GET /api/vms/:id/files/stat). */
export function fileStatView(vmId: string, path: string, r: FileStatResponse): FileStatView {
  const iso = (t: FileStatResponse['modifiedAt']) => (t ? timestampDate(t).toISOString() : null);
  return {
    vm_id: vmId,
    path,
    type: FILE_TYPES[r.type],
    size: Number(r.size),
    mode: r.mode.toString(8).padStart(4, '0'),
    uid: r.uid,
    gid: r.gid,
    owner: r.owner || null,
    group: r.group || null,
    accessed_at: iso(r.accessedAt),
    modified_at: iso(r.modifiedAt),
    changed_at: iso(r.changedAt),
    links: Number(r.links),
    link_target: r.linkTarget || null,
  };
}

/** A guest file's metadata, like stat(2) (guest.file.read; the file limits apply). */
export const FILE_STAT: GuestOperationSpec<FileStatInput, FileStatResponse> = {
  name: 'file.stat',
  permission: 'guest.file.read',
  prepare: ({ path, noFollow = false }, env) => {
    checkPath(env.config, path);
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path, no_follow: noFollow || undefined },
      file: { path },
      dispatch: (d) =>
        d.send(
          'file.stat',
          {
            case: 'fileStat',
            value: create(FileStatRequestSchema, {
              path,
              noFollow,
              limits: fileLimitsOf(d.grant),
            }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({
        status: 'ok',
        params: { type: FILE_TYPES[r.type], size: Number(r.size) },
      }),
    };
  },
  connect: connectBinding({
    method: 'statGuestFile',
    input: (req) => ({ vmId: req.vmId, input: { path: req.path, noFollow: req.noFollow } }),
    output: (stat) => ({ stat }),
  }),
};
