import { LocalMounts } from '../../src/files/local-mounts.js';
import { LINUX_PATH_RULES, type PathRules } from '../../src/files/path-policy.js';
import { openWriteTarget } from '../../src/files/write-target.js';

/**
 * The two ways a write reaches the filesystem, for suites that run every case both ways: on
 * this machine's local filesystem, whose calls are made synchronously (the default rules), and
 * as if nothing were local (every call through the thread pool, as on nfs or fuse).
 */
export const WRITE_CALL_MODES: ReadonlyArray<readonly [string, PathRules, boolean]> = [
  ['local filesystem (synchronous calls)', LINUX_PATH_RULES, true],
  [
    'filesystem not known to be local (thread pool)',
    {
      ...LINUX_PATH_RULES,
      openWriteTarget: (path, uids, link) =>
        openWriteTarget(path, uids, link, new LocalMounts(undefined)),
    },
    false,
  ],
];
