// Imported first by the agent's entry points, so it runs before any other module of the bundle.
//
// V8 optimizes a function once it has run enough bytecode. Starting up (building the protobuf
// registry from its embedded descriptors) is enough for a couple of functions, and the first
// use of the optimizing compiler maps about 4 MiB of its code and data into the process: a
// tenth of an idle agent. So start-up runs with a budget 15 times V8's default, and
// startupDone() puts the default back: code that stays busy later is optimized as usual.
//
// Under Bun (the shipped executable: JavaScriptCore, no V8 flags) none of it applies, and node:v8
// is not even loaded: loading it is start-up time before the first pong.
const DEFAULT_BUDGET = 67_584; // V8 11 (Node.js 20)

type V8 = { setFlagsFromString(flags: string): void };
const v8: V8 | undefined = process.versions.bun
  ? undefined
  : (process as unknown as { getBuiltinModule?(id: string): V8 }).getBuiltinModule?.('node:v8');

v8?.setFlagsFromString(`--interrupt-budget=${DEFAULT_BUDGET * 15}`);

// Blocking reads of the virtio port hold one pool thread for good; give file I/O room. (Read
// by libuv when the pool first starts, so it must be set before any file I/O.)
process.env.UV_THREADPOOL_SIZE ??= '8';

/** Called once the agent serves its channel and has announced itself. */
export function startupDone(): void {
  v8?.setFlagsFromString(`--interrupt-budget=${DEFAULT_BUDGET}`);
}
