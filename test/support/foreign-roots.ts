// Roots the agent's other targets run in on this amd64 Debian machine, made from Debian packages
// only and cached under .cache (LQ_CACHE_DIR), keyed by what went into them:
//   arm64Libc()    Debian's libc6:arm64 unpacked, run by qemu-aarch64-static through its own loader (downloaded with
//                  apt-get into a private apt state: the machine's dpkg architectures stay as
//                  they are)
//   debianRoot()   a Debian 12 minbase root made by debootstrap (a tarball, unpacked per use)
//   muslRoot()     busybox-static, Debian's musl as the C library, and the C++ runtime the
//                  musl executable links (see there)
// Each returns { reason } instead when a Debian package it needs is missing: the tests then
// skip saying why, unless LQ_CROSS_REQUIRED=1 (what .ci/run sets, having installed them).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CACHE_DIR = process.env.LQ_CACHE_DIR ?? join(REPO_ROOT, '.cache');

export interface Missing {
  reason: string;
}

/** A skip reason, or a thrown error where CI installed everything (LQ_CROSS_REQUIRED=1). */
export function missing(reason: string): Missing {
  if (process.env.LQ_CROSS_REQUIRED === '1') {
    throw new Error(`${reason} (LQ_CROSS_REQUIRED=1: .ci/run installs it, so this is a failure)`);
  }
  return { reason };
}

export function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function sh(script: string, options: { cwd?: string; timeoutMs?: number } = {}): string {
  const r = spawnSync('sh', ['-c', script], {
    encoding: 'utf8',
    cwd: options.cwd,
    timeout: options.timeoutMs ?? 120_000,
    env: { ...process.env, PATH: `/usr/local/sbin:/usr/sbin:/sbin:${process.env.PATH}` },
  });
  if (r.status !== 0) {
    throw new Error(`${script} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

/** Builds `dir` through a temporary sibling renamed into place: a half-made cache never counts. */
function cached(dir: string, make: (tmp: string) => void): string {
  if (existsSync(dir)) {
    return dir;
  }
  mkdirSync(join(dir, '..'), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    make(tmp);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return dir;
}

/** The Debian mirror apt uses here for bookworm's main (no host named in this repository). */
function bookwormMirror(): string | undefined {
  const policy = spawnSync('apt-cache', ['policy'], { encoding: 'utf8' }).stdout ?? '';
  return / (\S+) bookworm\/main amd64 Packages/.exec(policy)?.[1];
}

/**
 * A directory holding Debian's arm64 glibc (libc6:arm64, the version this machine's libc6 has),
 * for `qemu-aarch64-static -L DIR`.
 */
export function arm64Libc(): string | Missing {
  if (!has('qemu-aarch64-static')) {
    return missing('qemu-aarch64-static not installed (apt-get install qemu-user-static)');
  }
  const version = sh("dpkg-query -W -f '${Version}' libc6").trim();
  const base = join(CACHE_DIR, 'arm64-libc');
  const dir = join(base, version.replaceAll(':', '_'));
  try {
    return cached(dir, (tmp) => {
      const state = join(tmp, '.apt');
      for (const d of ['lists/partial', 'cache/archives/partial']) {
        mkdirSync(join(state, d), { recursive: true });
      }
      const apt = [
        '-q',
        '-o',
        'APT::Architecture=arm64',
        '-o',
        'APT::Architectures::=arm64',
        '-o',
        `Dir::State::Lists=${state}/lists`,
        '-o',
        `Dir::Cache=${state}/cache`,
        '-o',
        'Dir::State::status=/dev/null',
        '-o',
        'APT::Sandbox::User=root',
      ];
      execFileSync('apt-get', [...apt, 'update'], { stdio: 'pipe', timeout: 180_000 });
      execFileSync('apt-get', [...apt, 'download', `libc6:arm64=${version}`], {
        cwd: state,
        stdio: 'pipe',
        timeout: 180_000,
      });
      const deb = readdirSync(state).find((f) => f.startsWith('libc6_') && f.endsWith('.deb'));
      if (!deb) {
        throw new Error('apt-get download libc6:arm64 left no .deb');
      }
      execFileSync('dpkg-deb', ['-x', join(state, deb), join(tmp, 'root')]);
      rmSync(state, { recursive: true, force: true });
    });
  } catch (err) {
    return missing(`Debian's libc6:arm64 could not be downloaded: ${(err as Error).message}`);
  }
}

/**
 * A fresh copy of a Debian 12 minbase root (debootstrap; the tarball is cached), in `parent`.
 * Unpacked per use so every test gets an untouched one.
 */
export function debianRoot(parent: string): string | Missing {
  if (!has('debootstrap')) {
    return missing('debootstrap not installed (apt-get install debootstrap)');
  }
  const mirror = bookwormMirror();
  if (!mirror) {
    return missing('apt knows no mirror of Debian bookworm main (apt-cache policy)');
  }
  const debootstrap = sh("dpkg-query -W -f '${Version}' debootstrap").trim();
  const dir = join(CACHE_DIR, 'debian-12-minbase', debootstrap);
  try {
    cached(dir, (tmp) => {
      const root = join(tmp, 'root');
      mkdirSync(join(tmp, 'debs'));
      sh(`debootstrap --variant=minbase --cache-dir='${tmp}/debs' bookworm '${root}' '${mirror}'`, {
        timeoutMs: 900_000,
      });
      sh(`tar -C '${root}' --numeric-owner -cf '${tmp}/root.tar' .`, { timeoutMs: 300_000 });
      rmSync(root, { recursive: true, force: true });
      rmSync(join(tmp, 'debs'), { recursive: true, force: true });
    });
  } catch (err) {
    return missing(`debootstrap of Debian 12 failed: ${(err as Error).message}`);
  }
  const root = mkdtempSync(join(parent, 'debian-12-'));
  sh(`tar -C '${root}' --numeric-owner -xf '${join(dir, 'root.tar')}'`, { timeoutMs: 300_000 });
  return root;
}

// Debian's libstdc++ and libgcc_s are built against glibc and use a few of its symbols that musl
// lacks; Alpine's gcompat covers the same ground. This shim is what stands in for Alpine's own
// libstdc++ package (which `apk add libstdc++` gives a real Alpine guest, and install-agent.sh
// installs), because no musl build of libstdc++ is reachable from here.
const GLIBC_SHIM = `
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <locale.h>
long syscall(long, ...);
char __libc_single_threaded = 0;
uint32_t arc4random(void) { uint32_t v = 0; syscall(318 /* getrandom */, &v, sizeof v, 0); return v; }
size_t strftime_l(char *, size_t, const char *, const struct tm *, locale_t);
size_t __strftime_l(char *s, size_t n, const char *f, const struct tm *t, locale_t l) {
  return strftime_l(s, n, f, t, l);
}
int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) {
  (void)fn; (void)obj; (void)dso; return 0;
}
int _dl_find_object(void *pc, void *result) { (void)pc; (void)result; return -1; }
struct { unsigned vendor, type, subtype, features[1]; } __cpu_model;
int __cpu_indicator_init(void) { return 0; }
`;

/**
 * A musl root in `parent` with nothing of glibc's loader or libc in it: busybox-static (sh and
 * the applets), Debian's musl as /lib/ld-musl-x86_64.so.1, and the C++ runtime bun's musl
 * build links (libstdc++.so.6, libgcc_s.so.1: Debian's, through GLIBC_SHIM, LD_PRELOADed by the
 * caller as /lib/libglibc-shim.so). /etc/passwd and /etc/group name root and nobody.
 */
export function muslRoot(parent: string): string | Missing {
  const muslLibc = '/usr/lib/x86_64-linux-musl/libc.so';
  const alt = '/lib/x86_64-linux-musl/libc.so';
  const libc = existsSync(muslLibc) ? muslLibc : existsSync(alt) ? alt : undefined;
  if (!libc) {
    return missing("Debian's musl is not installed (apt-get install musl)");
  }
  if (!existsSync('/bin/busybox') || spawnSync('ldd', ['/bin/busybox']).status === 0) {
    return missing('busybox-static is not installed (apt-get install busybox-static)');
  }
  if (!has('gcc')) {
    return missing('gcc is not installed (apt-get install gcc)');
  }
  const libstdcxx = sh('gcc -print-file-name=libstdc++.so.6').trim();
  const libgcc = sh('gcc -print-file-name=libgcc_s.so.1').trim();
  if (!existsSync(libstdcxx) || !existsSync(libgcc)) {
    return missing('libstdc++6 / libgcc-s1 not found');
  }
  const root = mkdtempSync(join(parent, 'musl-'));
  chmodSync(root, 0o755); // it is /: mkdtemp's 0700 would keep every other user out
  for (const d of ['bin', 'lib', 'etc', 'tmp', 'proc']) {
    mkdirSync(join(root, d));
  }
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  for (const applet of ['sh', 'id', 'echo', 'cat', 'true', 'uname', 'env']) {
    symlinkSync('busybox', join(root, 'bin', applet));
  }
  copyFileSync(libc, join(root, 'lib/ld-musl-x86_64.so.1'));
  // Alpine's soname for musl, and the glibc sonames Debian's C++ runtime asks for.
  for (const name of ['libc.musl-x86_64.so.1', 'libc.so.6', 'libm.so.6', 'ld-linux-x86-64.so.2']) {
    symlinkSync('ld-musl-x86_64.so.1', join(root, 'lib', name));
  }
  copyFileSync(libstdcxx, join(root, 'lib/libstdc++.so.6'));
  copyFileSync(libgcc, join(root, 'lib/libgcc_s.so.1'));
  writeFileSync(join(root, 'shim.c'), GLIBC_SHIM);
  sh(`gcc -O2 -shared -fPIC -nostdlib -o lib/libglibc-shim.so shim.c`, { cwd: root });
  rmSync(join(root, 'shim.c'));
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  return root;
}
