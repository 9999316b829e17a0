// What this build of the agent is: filled in at build time, read by `--version` and AgentReady.
// scripts/build.mjs (esbuild) defines __LQ_COMMIT__ in every bundle; scripts/build-executables.mjs
// defines __LQ_TARGET__ when `bun build --compile` makes the executable of one platform. Where
// neither ran (ts-jest, the Node bundle), the fallbacks say so.
declare const __LQ_COMMIT__: string | undefined;
declare const __LQ_TARGET__: string | undefined;
declare const __LQ_VERSION__: string | undefined;
declare const __LQ_RELEASE_KEYS__: string | undefined;

/** The git commit the agent was built from (12 hex digits, `-dirty` for uncommitted changes). */
export const BUILD_COMMIT = typeof __LQ_COMMIT__ === 'string' ? __LQ_COMMIT__ : 'unknown';

/** linux-amd64, linux-arm64, linux-amd64-musl; `node-<platform>-<arch>` for the Node bundle. */
export const BUILD_TARGET =
  typeof __LQ_TARGET__ === 'string' ? __LQ_TARGET__ : `node-${process.platform}-${process.arch}`;

/** Compiled by bun into one executable (the file to replace on update is process.execPath). */
export const BUILD_COMPILED = typeof __LQ_TARGET__ === 'string';

/** The release version (root package.json's, or LQ_BUILD_VERSION at build time). */
export const BUILD_VERSION = typeof __LQ_VERSION__ === 'string' ? __LQ_VERSION__ : '0.1.0';

/**
 * Release public keys built in (base64 raw Ed25519, comma-separated at build time from
 * LQ_RELEASE_PUBLIC_KEYS or deploy/keys/release-public-keys.txt): a self-update must be signed
 * by one of them, one of the config's update.release_keys, or a key of a signed key list.
 */
export const BUILD_RELEASE_KEYS: string[] =
  typeof __LQ_RELEASE_KEYS__ === 'string' ? __LQ_RELEASE_KEYS__.split(',').filter(Boolean) : [];
