// Environment variables a run-as request may not carry (PROTOCOL.md §6 Execute). They steer the
// dynamic loader, libc's locale and resolver, or glibc's tunables of whatever program reads them
// first; with run_as_user or run_as_group set, that must never be a helper still running as root.
// The list is glibc's own list for set-user-ID programs (UNSECURE_ENVVARS) plus GLIBC_TUNABLES,
// less TMPDIR, which programs use for their own files.

const UNSAFE_NAMES: ReadonlySet<string> = new Set([
  'GCONV_PATH',
  'GETCONF_DIR',
  'GLIBC_TUNABLES',
  'HOSTALIASES',
  'LOCALDOMAIN',
  'LOCPATH',
  'MALLOC_ARENA_MAX',
  'MALLOC_ARENA_TEST',
  'MALLOC_PERTURB_',
  'MALLOC_TRACE',
  'NIS_PATH',
  'NLSPATH',
  'RESOLV_HOST_CONF',
  'RES_OPTIONS',
  'TZDIR',
]);

/** Whether `name` may not be set by a request that runs as another user or group. */
export function isUnsafeRunAsEnv(name: string): boolean {
  return name.startsWith('LD_') || UNSAFE_NAMES.has(name);
}

/** The first unsafe variable among `names`, for the error message, or undefined. */
export function firstUnsafeRunAsEnv(names: Iterable<string>): string | undefined {
  for (const n of names) {
    if (isUnsafeRunAsEnv(n)) {
      return n;
    }
  }
  return undefined;
}
