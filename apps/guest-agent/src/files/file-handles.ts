import { randomInt } from 'node:crypto';
import type { Stats } from 'node:fs';
import { type FileHandle, statfs } from 'node:fs/promises';
import { ErrorCode, type FileLimits } from '@lq/proto';
import { AgentOpError } from '../errors.js';
import type { Logger } from '../logger.js';
import { readFullySync } from './file-io.js';
import { ReadAhead, type ReadAheadOptions } from './read-ahead.js';

export interface FileHandleOptions {
  /** Handles open at once (files.max_open_handles). */
  maxOpen: number;
  /** A handle unused this long is closed (files.handle_idle_timeout_ms). */
  idleTimeoutMs: number;
  /** Small sequential reads served from one larger read (files.read_ahead_*); bytes 0: off. */
  readAhead?: ReadAheadOptions;
}

const NO_READ_AHEAD: ReadAheadOptions = { bytes: 0, maxAgeMs: 0 };

/** A file kept open for file.handle.read. */
export interface OpenFile {
  readonly id: bigint;
  /** The path as the caller named it, for messages. */
  readonly path: string;
  readonly handle: FileHandle;
  /** The file's stat at the open (what reads report as its size, mode and mtime). */
  readonly stat: Stats;
  /** Where a read without an offset starts. */
  position: number;
  /**
   * The file is on a local filesystem (localFilesystem): its reads are made synchronously, not
   * through the thread pool, until one is slow (readsWait).
   */
  readonly local: boolean;
  /**
   * A synchronous read of it took longer than files.sync_read_slow_ms (its reads wait on its
   * disk): they go through the thread pool from then on.
   */
  readsWait: boolean;
  /** Its small sequential synchronous reads (local files only): read-ahead.ts. */
  readonly readAhead: ReadAhead;
}

interface Entry extends OpenFile {
  readonly limitsKey: string;
  readonly timer: NodeJS.Timeout;
  readonly pending: Set<Promise<unknown>>;
}

// statfs(2) f_type of filesystems whose reads wait on nothing but a local device (linux/magic.h):
// ext2/3/4, xfs, btrfs, tmpfs, ramfs, overlay, squashfs, vfat, exfat, f2fs, iso9660, zfs.
const LOCAL_MAGIC = new Set([
  0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x858458f6, 0x794c7630, 0x73717368, 0x4d44,
  0x2011bab0, 0xf2f52010, 0x9660, 0x2fc12fc1,
]);

/**
 * Whether an open file is on a local filesystem (by its statfs type, through /proc/self/fd):
 * a read there can wait for a disk, never for a server that may not answer (nfs, cifs, fuse…).
 */
export async function isOnLocalFilesystem(handle: FileHandle): Promise<boolean> {
  try {
    return LOCAL_MAGIC.has((await statfs(`/proc/self/fd/${handle.fd}`)).type);
  } catch {
    return false;
  }
}

/** What binds a handle to its caller's grants: the narrowing roots, order aside. */
export function limitsKeyOf(limits: FileLimits | undefined): string {
  return limits && limits.roots.length > 0 ? JSON.stringify([...limits.roots].sort()) : '';
}

/**
 * The agent's open file handles (PROTOCOL.md §6 Files, file handles): bounded in number, each
 * closed after an idle time, each bound to the FileLimits it was opened with. Ids carry 32
 * random bits per process above a counter, so a handle an earlier agent process gave out is
 * not found here.
 */
export class FileHandleTable {
  private readonly files = new Map<bigint, Entry>();
  private readonly prefix = BigInt(randomInt(1, 2 ** 31)) << 32n;
  private seq = 0;
  /** Opens under way, counted against maxOpen so concurrent opens cannot overshoot it. */
  private reserved = 0;

  constructor(
    private readonly opts: FileHandleOptions,
    private readonly log?: Logger,
  ) {}

  get size(): number {
    return this.files.size;
  }

  /**
   * Holds a place for a handle before the file is opened (BUSY at the limit); the returned
   * function gives it back when the open fails.
   */
  reserve(): () => void {
    if (this.files.size + this.reserved >= this.opts.maxOpen) {
      throw new AgentOpError(
        ErrorCode.BUSY,
        `${this.opts.maxOpen} file handles are open (files.max_open_handles): close one first`,
      );
    }
    this.reserved++;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        this.reserved--;
      }
    };
  }

  /** Registers an opened file in a reserved place (reserve() first) and returns its entry. */
  add(
    release: () => void,
    file: { path: string; handle: FileHandle; stat: Stats; local: boolean },
    limits: FileLimits | undefined,
  ): OpenFile {
    release();
    const id = this.prefix | BigInt(++this.seq);
    const timer = setTimeout(() => {
      this.log?.info('file handle closed after its idle time', {
        handle: String(id),
        path: file.path,
      });
      void this.close(id);
    }, this.opts.idleTimeoutMs);
    timer.unref();
    const entry: Entry = {
      id,
      ...file,
      position: 0,
      readsWait: false,
      readAhead: new ReadAhead(this.opts.readAhead ?? NO_READ_AHEAD, readFullySync),
      limitsKey: limitsKeyOf(limits),
      timer,
      pending: new Set(),
    };
    this.files.set(id, entry);
    return entry;
  }

  /**
   * Runs `use` on an open handle (NOT_FOUND if none, NOT_ALLOWED under other limits) and
   * restarts its idle time; a close waits for it.
   */
  async use<T>(
    id: bigint,
    limits: FileLimits | undefined,
    use: (file: OpenFile) => Promise<T>,
  ): Promise<T> {
    const entry = this.openEntry(id, limits);
    const work = use(entry);
    entry.pending.add(work);
    try {
      return await work;
    } finally {
      entry.pending.delete(work);
      entry.timer.refresh();
    }
  }

  /**
   * An open handle for work done before the caller yields (a synchronous read: no close can
   * come in between, so none has to wait for it); NOT_FOUND / NOT_ALLOWED as use(). Restarts
   * its idle time.
   */
  useNow(id: bigint, limits: FileLimits | undefined): OpenFile {
    return this.openEntry(id, limits);
  }

  /**
   * A caller's close: false when the handle was not open; NOT_ALLOWED when it was opened under
   * other limits.
   */
  async closeFor(id: bigint, limits: FileLimits | undefined): Promise<boolean> {
    return this.entryOf(id, limits) ? this.close(id) : false;
  }

  /** Closes a handle once the reads under way on it are done; false when it was not open. */
  async close(id: bigint): Promise<boolean> {
    const entry = this.files.get(id);
    if (!entry) {
      return false;
    }
    this.files.delete(id);
    clearTimeout(entry.timer);
    await Promise.allSettled(entry.pending);
    entry.readAhead.drop();
    await entry.handle.close().catch(() => undefined);
    return true;
  }

  /** Lets go of every handle's read-ahead buffer (the agent gives memory back when idle). */
  drain(): void {
    for (const entry of this.files.values()) {
      entry.readAhead.drop();
    }
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.files.keys()].map((id) => this.close(id)));
  }

  private openEntry(id: bigint, limits: FileLimits | undefined): Entry {
    const entry = this.entryOf(id, limits);
    if (!entry) {
      throw new AgentOpError(
        ErrorCode.NOT_FOUND,
        `file handle ${id} is not open (closed, closed after files.handle_idle_timeout_ms ${this.opts.idleTimeoutMs} ms unused, or opened by an earlier agent process)`,
      );
    }
    entry.timer.refresh();
    return entry;
  }

  private entryOf(id: bigint, limits: FileLimits | undefined): Entry | undefined {
    const entry = this.files.get(id);
    if (entry && entry.limitsKey !== limitsKeyOf(limits)) {
      throw new AgentOpError(
        ErrorCode.NOT_ALLOWED,
        `file handle ${id} was opened under other file limits than this request's`,
      );
    }
    return entry;
  }
}
