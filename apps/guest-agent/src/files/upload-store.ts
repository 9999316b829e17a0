import { constants, type FileHandle, open, rename, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { posix } from 'node:path';
import { ErrorCode } from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError, toAgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import { writeFully } from './file-io.js';
import { pathNotAllowed } from './path-errors.js';
import { PathPolicy, quotePath, type WriteTarget } from './path-policy.js';
import { isSameFile } from './write-target.js';

export const UPLOAD_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

const NAME_MAX_BYTES = 255;
const DEFAULT_NEW_FILE_MODE = 0o644;
const BACKGROUND_FLUSH_BYTES = 8 * 1024 * 1024;

export type UploadStoreOptions = Pick<
  AgentConfig['files'],
  'upload_idle_timeout_ms' | 'max_uploads' | 'roots'
>;

export interface UploadChunk {
  uploadId: string;
  /** The target as requested; checked by the path policy when the upload starts. */
  path: string;
  offset: number;
  data: Uint8Array;
  commit: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  /** The caller's narrower roots (FileLimits), checked with the agent's when the upload starts. */
  narrow?: PathPolicy;
  /** The caller may not leave set-id bits (FileLimits.no_setid): cleared at the commit. */
  noSetid?: boolean;
}

export interface UploadChunkResult {
  bytesWritten: number;
  /** Extent of the upload so far (highest offset + length written). */
  size: number;
  committed: boolean;
}

/** An upload's checked place (its directory held open) and its temporary file there. */
interface OpenedUpload {
  readonly target: WriteTarget;
  readonly tempName: string;
  readonly handle: FileHandle;
}

interface Upload {
  readonly id: string;
  /** The target as requested. */
  readonly target: string;
  readonly opened: Promise<OpenedUpload>;
  readonly pending: Set<Promise<void>>;
  readonly timer: NodeJS.Timeout;
  state: 'open' | 'committing' | 'closed';
  committing?: Promise<unknown>;
  size: number;
  /** Bytes written since the last background flush was started. */
  unflushed: number;
  flushing?: Promise<void>;
  mode?: number;
  uid?: number;
  gid?: number;
  noSetid: boolean;
}

/** `.<name>.lq-upload-<id>`, the name shortened to fit NAME_MAX. */
export function uploadTempName(name: string, uploadId: string): string {
  const suffix = `.lq-upload-${uploadId}`;
  let base = name;
  while (base.length > 0 && Buffer.byteLength(`.${base}${suffix}`) > NAME_MAX_BYTES) {
    base = base.slice(0, -1);
  }
  return `.${base}${suffix}`;
}

/** The temporary file beside the target (uploadTempName in the target's directory). */
export function uploadTempPath(target: string, uploadId: string): string {
  return posix.join(posix.dirname(target), uploadTempName(posix.basename(target), uploadId));
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
    throw err;
  }
}

/**
 * Atomic whole-file uploads (PROTOCOL.md §6 Files). The first chunk checks the target with the
 * path policy for writes and keeps its directory open (WriteTarget): the temporary file is
 * created there (O_EXCL | O_NOFOLLOW) and the commit renames it there, so nothing swapped along
 * the path later can redirect the upload. Chunks of one upload may arrive concurrently and out
 * of order: each is a positional write on the upload's one FileHandle. The commit chunk waits
 * for every write in flight, then fsyncs, sets owner and mode on the handle, re-checks the
 * directory, the temporary file and the target, renames the temporary file over the target and
 * fsyncs the directory, so a reader sees the old file or the whole new one.
 */
export class UploadStore {
  private readonly uploads = new Map<string, Upload>();
  // Uploads (by id) whose temp file is being closed, unlinked or renamed; a new upload of the
  // same id waits for them so that the old upload's cleanup cannot remove the new temp file.
  // Temp names carry the id, so other ids cannot collide.
  private readonly settling = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    private readonly options: UploadStoreOptions,
    private readonly log?: Logger,
    private readonly paths: PathPolicy = new PathPolicy(options.roots),
  ) {}

  /** Uploads currently open (including ones being committed). */
  get openUploads(): number {
    return this.uploads.size;
  }

  async write(chunk: UploadChunk): Promise<UploadChunkResult> {
    if (!UPLOAD_ID_PATTERN.test(chunk.uploadId)) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `upload_id ${JSON.stringify(chunk.uploadId)} must match ${UPLOAD_ID_PATTERN.source}`,
      );
    }
    if (this.closed) {
      throw new AgentOpError(ErrorCode.BUSY, 'the agent is shutting down; uploads are closed');
    }
    const upload = this.uploads.get(chunk.uploadId) ?? this.start(chunk);
    if (upload.target !== chunk.path) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `upload ${JSON.stringify(upload.id)} writes ${quotePath(upload.target)}, not ${quotePath(chunk.path)}`,
      );
    }
    if (upload.state !== 'open') {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        `upload ${JSON.stringify(upload.id)} is already being committed`,
      );
    }
    upload.mode = chunk.mode ?? upload.mode;
    upload.uid = chunk.uid ?? upload.uid;
    upload.gid = chunk.gid ?? upload.gid;
    upload.timer.refresh();

    const written = this.writeChunk(upload, chunk);
    if (!chunk.commit) {
      await written;
      return { bytesWritten: chunk.data.length, size: upload.size, committed: false };
    }
    // The commit reports this write's failure through upload.pending.
    written.catch(() => undefined);
    upload.state = 'committing';
    const committing = this.commit(upload, chunk.data.length);
    upload.committing = committing.catch(() => undefined);
    return committing;
  }

  /** Aborts every open upload and removes its temp file; for shutdown. */
  async closeAll(): Promise<void> {
    this.closed = true;
    const uploads = [...this.uploads.values()];
    await Promise.all(
      uploads.map((u) =>
        u.state === 'committing' && u.committing
          ? u.committing
          : this.abort(u, 'the agent is shutting down'),
      ),
    );
    await Promise.all(this.settling.values());
  }

  private start(chunk: UploadChunk): Upload {
    if (this.uploads.size >= this.options.max_uploads) {
      throw new AgentOpError(
        ErrorCode.BUSY,
        `too many uploads in progress (files.max_uploads = ${this.options.max_uploads})`,
      );
    }
    const upload: Upload = {
      id: chunk.uploadId,
      target: chunk.path,
      opened: this.openTemp(chunk.uploadId, chunk.path, chunk.narrow).catch((err: unknown) => {
        throw toAgentOpError(
          err,
          `upload ${JSON.stringify(chunk.uploadId)}: creating a temporary file beside ${quotePath(chunk.path)}`,
        );
      }),
      pending: new Set(),
      timer: setTimeout(() => this.onIdle(upload), this.options.upload_idle_timeout_ms).unref(),
      state: 'open',
      size: 0,
      unflushed: 0,
      noSetid: chunk.noSetid === true,
    };
    upload.opened.catch(() => {
      // The chunks waiting on the open report the error; a retry starts afresh.
      this.forget(upload);
    });
    this.uploads.set(upload.id, upload);
    return upload;
  }

  private async openTemp(
    uploadId: string,
    path: string,
    narrow: PathPolicy | undefined,
  ): Promise<OpenedUpload> {
    await this.settling.get(uploadId);
    const target = await this.paths.openForWrite(path);
    try {
      await narrow?.checkWriteTarget(path, target);
      const tempName = uploadTempName(target.name, uploadId);
      const tempPath = target.entry(tempName);
      // A stale temp file (an agent killed mid-upload) is replaced; O_EXCL | O_NOFOLLOW then
      // refuse anything planted at the name between the unlink and the open, a symlink included.
      await unlink(tempPath).catch(ignoreMissing);
      const handle = await open(
        tempPath,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        await target.checkOpened(handle, tempName);
      } catch (err) {
        await handle.close();
        await unlink(tempPath).catch(() => undefined);
        throw err;
      }
      return { target, tempName, handle };
    } catch (err) {
      await target.close();
      throw err;
    }
  }

  private writeChunk(upload: Upload, chunk: UploadChunk): Promise<void> {
    const write = (async () => {
      const { handle } = await upload.opened;
      await writeFully(handle, chunk.data, chunk.offset);
      upload.size = Math.max(upload.size, chunk.offset + chunk.data.length);
      this.flushInBackground(upload, handle, chunk.data.length);
    })();
    upload.pending.add(write);
    const done = (): void => {
      upload.pending.delete(write);
    };
    write.then(done, done);
    return write.catch((err: unknown) => {
      throw toAgentOpError(
        err,
        `upload ${JSON.stringify(upload.id)}: writing the temporary file for ${quotePath(upload.target)}`,
      );
    });
  }

  // The commit's fsync would otherwise write the whole file out at the end, doubling a large
  // upload's time; flushing as data arrives overlaps the disk with the transfer.
  private flushInBackground(upload: Upload, handle: FileHandle, bytes: number): void {
    upload.unflushed += bytes;
    if (upload.unflushed < BACKGROUND_FLUSH_BYTES || upload.flushing) {
      return;
    }
    upload.unflushed = 0;
    upload.flushing = handle
      .datasync()
      .catch(() => undefined)
      .finally(() => {
        upload.flushing = undefined;
      });
  }

  private async commit(upload: Upload, bytesWritten: number): Promise<UploadChunkResult> {
    const what = `upload ${JSON.stringify(upload.id)}: committing ${quotePath(upload.target)}`;
    const results = await Promise.allSettled([...upload.pending]);
    await upload.flushing;
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    let opened: OpenedUpload;
    let temp: Stats;
    try {
      if (failed) {
        // The failed chunk was answered with its error; the host may resend it and commit again.
        throw failed.reason;
      }
      opened = await upload.opened;
      const { handle, target } = opened;
      // The target as it is now, never followed: a link planted since the start is refused.
      const existing = await target.checkNotLink();
      const uid = upload.uid ?? existing?.uid;
      const gid = upload.gid ?? existing?.gid;
      // chown clears set-id bits, so it goes before chmod.
      // (Windows files have no Unix owner: the write handler refuses uid/gid there.)
      if (this.paths.os.unixOwners && (uid !== undefined || gid !== undefined)) {
        await handle.chown(uid ?? -1, gid ?? -1);
      }
      const mode = upload.mode ?? (existing ? existing.mode : DEFAULT_NEW_FILE_MODE);
      // A caller held to no_setid replaces a set-id file with one without the bits.
      await handle.chmod(upload.noSetid ? mode & 0o1777 : mode & 0o7777);
      await handle.sync();
      temp = await handle.stat();
    } catch (err) {
      if (upload.state === 'committing') {
        upload.state = 'open';
        upload.timer.refresh();
      }
      throw toAgentOpError(err, what);
    }

    this.forget(upload);
    const work = (async () => {
      try {
        await this.renameIntoPlace(opened, temp);
        await this.syncDirectory(opened.target);
      } finally {
        await opened.target.close().catch(() => undefined);
      }
    })();
    void this.settle(upload.id, work);
    try {
      await work;
    } catch (err) {
      throw toAgentOpError(err, what);
    }
    this.log?.debug('upload committed', {
      uploadId: upload.id,
      path: upload.target,
      size: upload.size,
    });
    return { bytesWritten, size: upload.size, committed: true };
  }

  // Last checks right before the rename, all in the held directory: it is still where it was
  // checked, the temporary file is still the one written, the target is still no symlink.
  private async renameIntoPlace(opened: OpenedUpload, temp: Stats): Promise<void> {
    const { target, tempName, handle } = opened;
    try {
      await handle.close();
      await target.checkDirInPlace();
      const now = await target.lstat(tempName);
      if (!now || !isSameFile(now, temp)) {
        throw pathNotAllowed(
          `path ${quotePath(target.requested)}: the temporary file ${quotePath(tempName)} was removed or replaced before the commit`,
        );
      }
      await target.checkNotLink();
      await rename(target.entry(tempName), target.entry());
    } catch (err) {
      await unlink(target.entry(tempName)).catch(() => undefined);
      throw err;
    }
  }

  // The rename is durable only once the directory is; the file's data already is.
  private async syncDirectory(target: WriteTarget): Promise<void> {
    try {
      await target.syncDir();
    } catch (err) {
      this.log?.warn('cannot fsync directory after upload', {
        dir: target.dirPath,
        error: String(err),
      });
    }
  }

  private onIdle(upload: Upload): void {
    if (upload.state !== 'open') {
      return;
    }
    if (upload.pending.size > 0) {
      upload.timer.refresh();
      return;
    }
    this.log?.info('upload abandoned: idle', {
      uploadId: upload.id,
      path: upload.target,
      idleMs: this.options.upload_idle_timeout_ms,
    });
    void this.abort(upload, 'idle');
  }

  private abort(upload: Upload, reason: string): Promise<void> {
    this.forget(upload);
    const cleanup = (async () => {
      await Promise.allSettled([...upload.pending]);
      const opened = await upload.opened.catch(() => undefined);
      if (opened) {
        await opened.handle.close().catch(() => undefined);
        await unlink(opened.target.entry(opened.tempName)).catch(() => undefined);
        await opened.target.close().catch(() => undefined);
      }
    })();
    this.log?.debug('upload aborted', { uploadId: upload.id, reason });
    return this.settle(upload.id, cleanup);
  }

  private forget(upload: Upload): void {
    upload.state = 'closed';
    clearTimeout(upload.timer);
    if (this.uploads.get(upload.id) === upload) {
      this.uploads.delete(upload.id);
    }
  }

  private settle(uploadId: string, work: Promise<void>): Promise<void> {
    const settled = work.then(
      () => undefined,
      () => undefined,
    );
    const chained = (this.settling.get(uploadId) ?? Promise.resolve()).then(() => settled);
    this.settling.set(uploadId, chained);
    void chained.then(() => {
      if (this.settling.get(uploadId) === chained) {
        this.settling.delete(uploadId);
      }
    });
    return settled;
  }
}
