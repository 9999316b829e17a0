// What this build of the agent is: filled in at build time, read by `--version` and AgentReady.
// scripts/build.mjs (esbuild) defines __LQ_COMMIT__ in every bundle; scripts/build-executables.mjs
// defines __LQ_TARGET__ when `bun build --compile` makes the executable of one platform. Where
// neither ran (ts-jest, the Node bundle), the fallbacks say so.
declare const __LQ_COMMIT__: string | undefined;
declare const __LQ_TARGET__: string | undefined;

/** The git commit the agent was built from (12 hex digits, `-dirty` for uncommitted changes). */
export const BUILD_COMMIT = typeof __LQ_COMMIT__ === 'string' ? __LQ_COMMIT__ : 'unknown';

/** linux-amd64, linux-arm64, linux-amd64-musl; `node-<platform>-<arch>` for the Node bundle. */
export const BUILD_TARGET =
  typeof __LQ_TARGET__ === 'string' ? __LQ_TARGET__ : `node-${process.platform}-${process.arch}`;
