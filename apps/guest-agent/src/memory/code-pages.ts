// Gives back the pages of the agent's own executable code that it is not using.
//
// The shipped agent is one executable (bun's runtime with the agent inside). Starting up touches
// about 30 MB of its machine code, most of it never again (the module loader, the parser, code
// the start-up path alone needs): clean pages of the file, mapped into the agent and counted in
// its RSS. madvise(MADV_DONTNEED) on the executable's text mappings drops them from the agent's
// page tables; the kernel keeps them in its page cache, and a page the agent runs again comes
// back with a minor fault. Only read-only executable mappings of the agent's own file are
// touched, never anything it wrote: nothing but the mapping's residency changes. Under Node.js
// (the bundle, simulated VMs) there is nothing to do.
import { readFileSync, realpathSync } from 'node:fs';

const MADV_DONTNEED = 4;

type Madvise = (address: bigint, length: bigint, advice: number) => number;

let madvise: Madvise | null | undefined;

async function loadMadvise(): Promise<Madvise | null> {
  if (madvise !== undefined) {
    return madvise;
  }
  madvise = null;
  if (!process.versions.bun || process.platform !== 'linux') {
    return null;
  }
  const { dlopen, FFIType } = await import('bun:ffi');
  // glibc, then musl (Alpine's soname, Debian's musl).
  for (const lib of ['libc.so.6', 'libc.musl-x86_64.so.1', 'libc.musl-aarch64.so.1', 'libc.so']) {
    try {
      const libc = dlopen(lib, {
        madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
      });
      const fn = libc.symbols.madvise!;
      madvise = (address, length, advice) => fn(address, length, advice);
      return madvise;
    } catch {
      // not this libc
    }
  }
  return null;
}

/** The r-xp mappings of `file` in a /proc/<pid>/maps text: [start, end) addresses. */
export function textMappings(maps: string, file: string): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) r-xp [0-9a-f]+ \S+ \d+\s+(.+)$/.exec(line);
    if (m && m[3] === file) {
      out.push([BigInt(`0x${m[1]}`), BigInt(`0x${m[2]}`)]);
    }
  }
  return out;
}

/** Drops the agent's executable code pages from its RSS; returns the bytes advised (0: none). */
export async function releaseCodePages(): Promise<number> {
  const advise = await loadMadvise();
  if (!advise) {
    return 0;
  }
  const self = realpathSync(process.execPath);
  let bytes = 0n;
  for (const [start, end] of textMappings(readFileSync('/proc/self/maps', 'utf8'), self)) {
    if (advise(start, end - start, MADV_DONTNEED) === 0) {
      bytes += end - start;
    }
  }
  return Number(bytes);
}
