import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** pwrite until every byte is written (regular files rarely write short, but may). */
export async function writeFully(
  handle: FileHandle,
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
