// A directory's names one at a time, without holding the directory in memory.
//
// Node's fs.opendir reads a directory with getdents(2) a buffer at a time. Bun's (the shipped
// agent is a Bun executable) reads the whole directory when it opens it: 55 MB for 300,000
// names, which would make a listing's memory the directory's rather than the page's. Under Bun
// the agent therefore calls libc's opendir/readdir/closedir itself (bun:ffi, as
// memory/code-pages.ts does for madvise); under Node.js (the bundle, simulated VMs) fs.opendir
// streams already.
import { opendirSync } from 'node:fs';

/** Names of a directory, "." and ".." left out; close() when done (also after an error). */
export interface DirectoryStream {
  /** The next name, or null at the end. */
  next(): string | null;
  close(): void;
}

interface Libc {
  opendir(path: Uint8Array): number;
  readdir(dir: number): number;
  closedir(dir: number): number;
  name(entry: number): string;
}

// struct dirent on 64-bit Linux (glibc and musl alike): d_ino (8), d_off (8), d_reclen (2),
// d_type (1), then d_name.
const D_NAME_OFFSET = 19;

let libc: Promise<Libc | null> | undefined;

async function loadLibc(): Promise<Libc | null> {
  if (!process.versions.bun || process.platform !== 'linux' || process.arch.endsWith('32')) {
    return null;
  }
  const { dlopen, FFIType, CString } = await import('bun:ffi');
  for (const lib of ['libc.so.6', 'libc.musl-x86_64.so.1', 'libc.musl-aarch64.so.1', 'libc.so']) {
    try {
      const { symbols } = dlopen(lib, {
        opendir: { args: [FFIType.ptr], returns: FFIType.ptr },
        readdir: { args: [FFIType.ptr], returns: FFIType.ptr },
        closedir: { args: [FFIType.ptr], returns: FFIType.i32 },
      });
      return {
        opendir: (path) => symbols.opendir!(path),
        readdir: (dir) => symbols.readdir!(dir),
        closedir: (dir) => symbols.closedir!(dir),
        name: (entry) => new CString(entry, D_NAME_OFFSET).toString(),
      };
    } catch {
      // not this libc
    }
  }
  return null;
}

/**
 * Opens `path` (a directory, usually `/proc/self/fd/<n>` of one held open) for reading its
 * names in directory order. Throws like fs does (an Error with an errno `code`) when it cannot
 * be opened.
 */
export async function openDirectoryStream(path: string): Promise<DirectoryStream> {
  libc ??= loadLibc().catch(() => null);
  const c = await libc;
  if (!c) {
    const dir = opendirSync(path, { bufferSize: 1024 });
    let closed = false;
    return {
      next: () => dir.readSync()?.name ?? null,
      close: () => {
        if (!closed) {
          closed = true;
          dir.closeSync();
        }
      },
    };
  }
  const dir = c.opendir(Buffer.from(`${path}\0`));
  if (!dir) {
    // libc said no; let fs name the reason (ENOENT, ENOTDIR, EACCES) the way Node would.
    opendirSync(path).closeSync();
    throw Object.assign(new Error(`opendir ${path} failed`), { code: 'EIO' });
  }
  let open = true;
  return {
    next() {
      for (;;) {
        const entry = open ? c.readdir(dir) : 0;
        if (!entry) {
          return null;
        }
        const name = c.name(entry);
        if (name !== '.' && name !== '..') {
          return name;
        }
      }
    },
    close() {
      if (open) {
        open = false;
        c.closedir(dir);
      }
    },
  };
}
