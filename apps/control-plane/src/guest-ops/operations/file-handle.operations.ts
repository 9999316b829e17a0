import { create } from '@bufbuild/protobuf';
import { sha256Hex } from '@lq/audit';
import {
  FileCloseRequestSchema,
  FileHandleReadRequestSchema,
  FileOpenRequestSchema,
  type FileCloseResponse,
  type FileOpenResponse,
  type FileReadResponse,
} from '@lq/proto';
import { fileLimitsOf } from '../../access/vm-access.service.js';
import type { GuestOperationSpec } from '../guest-operation.js';
import { checkPath, invalid } from './validate.js';

const DEFAULT_NODE_CHUNK = 512 * 1024;

/**
 * Opens a guest file for reading under a handle (file.open; PROTOCOL.md §6 Files). The handle
 * is bound to the caller's file limits by the agent: a read or close under other limits is
 * refused there. No REST route: hosts that read many small chunks use it through the node.
 */
export const FILE_OPEN: GuestOperationSpec<{ path: string }, FileOpenResponse> = {
  name: 'file.open',
  permission: 'guest.file.read',
  prepare: ({ path }, env) => {
    checkPath(env.config, path);
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path },
      file: { path },
      dispatch: (d) =>
        d.send(
          'file.open',
          {
            case: 'fileOpen',
            value: create(FileOpenRequestSchema, { path, limits: fileLimitsOf(d.grant) }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({ status: 'ok', params: { handle: String(r.handle) } }),
    };
  },
};

export interface HandleReadInput {
  handle: bigint;
  /** 0: the node's chunk limit. */
  length: number;
  offset?: bigint;
}

/** One chunk of an open handle (file.handle.read). */
export const FILE_HANDLE_READ: GuestOperationSpec<HandleReadInput, FileReadResponse> = {
  name: 'file.handle.read',
  permission: 'guest.file.read',
  prepare: ({ handle, length, offset }, env) => {
    if (handle <= 0n) {
      throw invalid('handle', 'must be a handle file.open returned');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: {
        handle: String(handle),
        length,
        offset: offset === undefined ? undefined : Number(offset),
      },
      check: (where) => {
        const max = where.fileChunkMaxBytes || DEFAULT_NODE_CHUNK;
        if (length > max) {
          throw invalid('length', `must be at most ${max} bytes (the node's chunk limit)`);
        }
      },
      dispatch: (d) =>
        d.send(
          'file.handle.read',
          {
            case: 'fileHandleRead',
            value: create(FileHandleReadRequestSchema, {
              handle,
              offset,
              length: length || d.where.fileChunkMaxBytes || DEFAULT_NODE_CHUNK,
              limits: fileLimitsOf(d.grant),
            }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({
        status: 'ok',
        params: { bytes: r.data.length, sha256: sha256Hex(r.data) },
      }),
    };
  },
};

/** Closes an open handle (file.close). */
export const FILE_CLOSE: GuestOperationSpec<{ handle: bigint }, FileCloseResponse> = {
  name: 'file.close',
  permission: 'guest.file.read',
  prepare: ({ handle }, env) => {
    if (handle <= 0n) {
      throw invalid('handle', 'must be a handle file.open returned');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { handle: String(handle) },
      dispatch: (d) =>
        d.send(
          'file.close',
          {
            case: 'fileClose',
            value: create(FileCloseRequestSchema, { handle, limits: fileLimitsOf(d.grant) }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({ status: 'ok', params: { closed: r.closed } }),
    };
  },
};
