import { createHash } from 'node:crypto';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { sha256Hex } from '@lq/audit';
import {
  FileReadRequestSchema,
  FileWriteRequestSchema,
  type FileLimits,
  type FileReadResponse,
  type FileWriteResponse,
} from '@lq/proto';
import { readGuestFile, writeGuestFile, type FileChunkPort } from '@lq/host';
import { fileLimitsOf } from '../../access/vm-access.service.js';
import { connectBinding } from '../connect-binding.js';
import type { GuestOperationSpec } from '../guest-operation.js';
import { checkPath, invalid } from './validate.js';

const DEFAULT_NODE_CHUNK = 512 * 1024;

/** A port whose every chunk request carries the caller's file limits. */
function limitedPort(port: FileChunkPort, limits: FileLimits | undefined): FileChunkPort {
  if (!limits) {
    return port;
  }
  return {
    chunkMaxBytes: port.chunkMaxBytes,
    read: (request, timeoutMs) => port.read({ ...request, limits }, timeoutMs),
    write: (request, timeoutMs) => port.write({ ...request, limits }, timeoutMs),
  };
}

export interface ReadChunkInput {
  path: string;
  offset: bigint;
  /** 0: the node's chunk limit. */
  length: number;
}

/** One chunk of a guest file (Connect ReadGuestFile). */
export const FILE_READ_CHUNK: GuestOperationSpec<ReadChunkInput, FileReadResponse> = {
  name: 'file.read',
  permission: 'guest.file.read',
  prepare: ({ path, offset, length }, env) => {
    checkPath(env.config, path);
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path, offset: Number(offset), length },
      file: { path },
      check: (where) => {
        const max = where.fileChunkMaxBytes || DEFAULT_NODE_CHUNK;
        if (length > max) {
          throw invalid('length', `must be at most ${max} bytes (the node's chunk limit)`);
        }
      },
      dispatch: (d) =>
        d.send(
          'file.read',
          {
            case: 'fileRead',
            value: create(FileReadRequestSchema, {
              path,
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
  connect: connectBinding({
    method: 'readGuestFile',
    input: (req) => ({
      vmId: req.vmId,
      input: { path: req.path, offset: req.offset, length: req.length },
    }),
    output: (r) => ({ data: r.data, eof: r.eof, totalSize: r.totalSize, mode: r.mode }),
  }),
};

export type WriteChunkInput = MessageInitShape<typeof FileWriteRequestSchema>;

/** One chunk of a guest file, in place or into an upload (Connect WriteGuestFile). */
export const FILE_WRITE_CHUNK: GuestOperationSpec<WriteChunkInput, FileWriteResponse> = {
  name: 'file.write',
  permission: 'guest.file.write',
  prepare: (request, env) => {
    const path = request.path ?? '';
    checkPath(env.config, path);
    const timeoutMs = env.timeoutMs(undefined);
    const data = request.data ?? new Uint8Array();
    return {
      // Never the bytes themselves: their size and digest.
      params: {
        path,
        offset: Number(request.offset ?? 0n),
        append: request.append || undefined,
        create: request.create || undefined,
        truncate: request.truncate || undefined,
        mode: request.mode === undefined ? undefined : request.mode.toString(8),
        uid: request.uid,
        gid: request.gid,
        upload_id: request.uploadId || undefined,
        commit: request.commit || undefined,
        bytes: data.length,
        sha256: sha256Hex(data),
      },
      file: {
        path,
        mode: request.mode,
        owner: request.uid !== undefined || request.gid !== undefined,
      },
      check: (where) => {
        const max = where.fileChunkMaxBytes || DEFAULT_NODE_CHUNK;
        if (data.length > max) {
          throw invalid(
            'data',
            `must be at most ${max} bytes per call (the node's chunk limit); use PUT /api/vms/:id/files for whole files`,
          );
        }
      },
      dispatch: (d) =>
        d.send(
          'file.write',
          {
            case: 'fileWrite',
            value: create(FileWriteRequestSchema, { ...request, limits: fileLimitsOf(d.grant) }),
          },
          timeoutMs,
        ),
      outcome: (r) => ({
        status: 'ok',
        params: { bytes_written: Number(r.bytesWritten), size: Number(r.size) },
      }),
    };
  },
  connect: connectBinding({
    method: 'writeGuestFile',
    input: (req) => ({
      vmId: req.vmId,
      input: {
        path: req.path,
        data: req.data,
        offset: req.offset,
        append: req.append,
        create: req.create,
        truncate: req.truncate,
        mode: req.mode,
      },
    }),
    output: (r) => ({ bytesWritten: r.bytesWritten, size: r.size }),
  }),
};

export interface DownloadInput {
  path: string;
  /** Where the chunks go as they come; memory stays bounded by a few chunks. */
  sink: (chunk: Uint8Array) => Promise<void> | void;
}

/** A whole guest file, streamed out in chunks (REST GET /api/vms/:id/files). */
export const FILE_DOWNLOAD: GuestOperationSpec<DownloadInput, { bytes: number; sha256: string }> = {
  name: 'file.read',
  permission: 'guest.file.read',
  prepare: ({ path, sink }, env) => {
    checkPath(env.config, path);
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path },
      file: { path },
      dispatch: async (d) => {
        const digest = createHash('sha256');
        const port = limitedPort(d.filePort(), fileLimitsOf(d.grant));
        const r = await readGuestFile(
          port,
          path,
          (chunk) => {
            digest.update(chunk);
            return sink(chunk);
          },
          { timeoutMs },
        );
        return { bytes: r.bytes, sha256: digest.digest('hex') };
      },
      outcome: (r) => ({ status: 'ok', params: { bytes: r.bytes, sha256: r.sha256 } }),
    };
  },
};

export interface UploadInput {
  path: string;
  source: AsyncIterable<Uint8Array>;
  mode?: number;
}

/** Replaces a guest file atomically from a stream of chunks (REST PUT /api/vms/:id/files). */
export const FILE_UPLOAD: GuestOperationSpec<
  UploadInput,
  { bytes: number; size: number; sha256: string }
> = {
  name: 'file.write',
  permission: 'guest.file.write',
  prepare: ({ path, source, mode }, env) => {
    checkPath(env.config, path);
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { path, mode: mode === undefined ? undefined : mode.toString(8), whole_file: true },
      file: { path, mode },
      dispatch: async (d) => {
        const digest = createHash('sha256');
        async function* hashed(): AsyncIterable<Uint8Array> {
          for await (const chunk of source) {
            digest.update(chunk);
            yield chunk;
          }
        }
        const port = limitedPort(d.filePort(), fileLimitsOf(d.grant));
        const r = await writeGuestFile(port, path, hashed(), { mode, timeoutMs });
        return { bytes: r.bytes, size: Number(r.size), sha256: digest.digest('hex') };
      },
      outcome: (r) => ({
        status: 'ok',
        params: { bytes: r.bytes, size: r.size, sha256: r.sha256 },
      }),
    };
  },
};
