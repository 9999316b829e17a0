import {
  closeSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  type Stats,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/** The calls a write makes on an open file: a FileHandle's, or SyncFile's. */
export interface WritableFile {
  readonly fd: number;
  stat(): Promise<Stats>;
  truncate(length: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
  chmod(mode: number): Promise<void>;
  write(
    data: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<{ bytesWritten: number }>;
  close(): Promise<void>;
}

/** A synchronous call's result or error as a settled promise. */
export function settled<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    // As thrown: an fs error keeps its code (instanceof Error is false for it in another realm,
    // e.g. jest's module context, so it must not be re-wrapped).
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    return Promise.reject(err);
  }
}

/**
 * A descriptor opened with openSync on a local filesystem (a file, or a directory held by a
 * write's walk), used through synchronous calls (each a few µs, where a trip through the thread
 * pool costs 20–50); the methods return promises so that a write is the same code either way,
 * and a call's error arrives as a rejection.
 */
export class SyncFile implements WritableFile {
  constructor(readonly fd: number) {}

  stat(): Promise<Stats> {
    return settled(() => fstatSync(this.fd));
  }

  truncate(length: number): Promise<void> {
    return settled(() => ftruncateSync(this.fd, length));
  }

  chown(uid: number, gid: number): Promise<void> {
    return settled(() => fchownSync(this.fd, uid, gid));
  }

  chmod(mode: number): Promise<void> {
    return settled(() => fchmodSync(this.fd, mode));
  }

  write(
    data: Uint8Array,
    offset: number,
    length: number,
    position: number | null,
  ): Promise<{ bytesWritten: number }> {
    return settled(() => ({ bytesWritten: writeSync(this.fd, data, offset, length, position) }));
  }

  close(): Promise<void> {
    return settled(() => closeSync(this.fd));
  }
}

/**
 * Opens `path` with synchronous calls when `sync` (a local filesystem, LocalMounts: SyncFile),
 * else through the thread pool (a FileHandle); an error arrives as a rejection either way.
 */
export function openFile(
  path: string,
  flags: number,
  sync: boolean,
  mode?: number,
): Promise<WritableFile> {
  return sync ? settled(() => new SyncFile(openSync(path, flags, mode))) : open(path, flags, mode);
}

/** pwrite until every byte is written (regular files rarely write short, but may). */
export async function writeFully(
  handle: WritableFile,
  data: Uint8Array,
  position: number | null,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(
      data,
      done,
      data.length - done,
      position === null ? null : position + done,
    );
    if (bytesWritten === 0) {
      throw new Error(`short write: ${done} of ${data.length} bytes`);
    }
    done += bytesWritten;
  }
}

/** pread into buf until it is full or the file ends; returns the bytes read. */
export async function readFully(
  handle: FileHandle,
  buf: Uint8Array,
  position: number,
): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) {
      break;
    }
    done += bytesRead;
  }
  return done;
}

/** readFully without the thread pool: for small reads of local files (file handles). */
export function readFullySync(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) {
      break;
    }
    done += n;
  }
  return done;
}

/** Offsets arrive as uint64; file positions must stay exact as JS numbers. */
export function toSafeOffset(value: bigint): number | undefined {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
}
