#!/usr/bin/env node
// Bundles what ships as single files: the guest agent and agentctl for Node.js (the simulated
// VMs and `npm run agent` run these), the one file scripts/build-executables.mjs compiles into
// the shipped executables, and lqctl. Fast enough (~100 ms) to run before every test run.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, resolve } from 'node:path';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The commit `limiquantix-agent --version` names: 12 hex digits, `-dirty` with local changes. */
function commit() {
  const git = (...args) =>
    execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const head = git('rev-parse', '--short=12', 'HEAD').trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no').trim() !== '';
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown'; // not a git checkout (a source tarball)
  }
}

/** The release version the agent reports: LQ_BUILD_VERSION, else the root package.json's. */
function version() {
  return (
    process.env.LQ_BUILD_VERSION ||
    JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')).version
  );
}

/**
 * Release public keys built into the agent (PROTOCOL.md §10): LQ_RELEASE_PUBLIC_KEYS
 * (comma-separated base64), else deploy/keys/release-public-keys.txt (one per line, # comments).
 */
function releaseKeys() {
  const file = resolve(root, 'deploy/keys/release-public-keys.txt');
  const text =
    process.env.LQ_RELEASE_PUBLIC_KEYS ?? (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const keys = text
    .split('\n')
    .flatMap((line) => line.replace(/#.*/, '').split(','))
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of keys) {
    if (Buffer.from(k, 'base64').length !== 32) {
      throw new Error(`release public key ${k} is not a base64 Ed25519 key of 32 bytes`);
    }
  }
  return keys.join(',');
}

const common = {
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  sourcemap: 'linked',
  legalComments: 'none',
  tsconfig: resolve(root, 'tsconfig.json'),
  logLevel: 'warning',
  // Loaded only when the agent runs under Bun (apps/guest-agent/src/memory/code-pages.ts).
  external: ['bun:ffi'],
  define: {
    __LQ_COMMIT__: JSON.stringify(process.env.LQ_BUILD_COMMIT || commit()),
    __LQ_VERSION__: JSON.stringify(version()),
    __LQ_RELEASE_KEYS__: JSON.stringify(releaseKeys()),
  },
};

await build({
  ...common,
  entryPoints: {
    'limiquantix-agent': resolve(root, 'apps/guest-agent/src/main.ts'),
    // The agent and agentctl in one file: what `bun build --compile` turns into the executables.
    'limiquantix-agent-executable': resolve(root, 'apps/guest-agent/src/executable.ts'),
    agentctl: resolve(root, 'apps/agentctl/src/main.ts'),
    // Many simulated VMs' agents in one process (scripts/sim-core.mjs, agentsPerProcess).
    'limiquantix-sim-host': resolve(root, 'apps/sim-host/src/main.ts'),
  },
  outdir: resolve(root, 'dist/guest-agent'),
  outExtension: { '.js': '.cjs' },
});

// lqctl, the platform teams' CLI: one file that needs Node.js (≥ 18, for fetch) and nothing else.
await build({
  ...common,
  entryPoints: { lqctl: resolve(root, 'apps/lqctl/src/main.ts') },
  outdir: resolve(root, 'dist/lqctl'),
  outExtension: { '.js': '.cjs' },
});

if (process.argv.includes('--bench')) {
  await build({
    ...common,
    entryPoints: {
      agent: resolve(root, 'bench/agent.ts'),
      'node-daemon': resolve(root, 'bench/node-daemon.ts'),
      'control-plane': resolve(root, 'bench/control-plane.ts'),
      audit: resolve(root, 'bench/audit.ts'),
      fleet: resolve(root, 'bench/fleet.ts'),
      faults: resolve(root, 'bench/faults.ts'),
      'file-list': resolve(root, 'bench/file-list.ts'),
      telemetry: resolve(root, 'bench/telemetry.ts'),
    },
    outdir: resolve(root, 'dist/bench'),
    // bench:telemetry runs the control plane's recorder (Nest providers) in process: Nest's
    // optional transports are imported lazily, never by it.
    external: [
      ...common.external,
      '@nestjs/microservices',
      '@nestjs/websockets',
      '@nestjs/microservices/*',
      '@nestjs/websockets/*',
    ],
    // Test-support modules locate the repository from import.meta.url; in this CJS bundle it
    // stands for a file in scripts/, where sim-core.mjs lives.
    define: {
      ...common.define,
      'import.meta.url': JSON.stringify(pathToFileURL(resolve(root, 'scripts/bench.mjs')).href),
    },
    outExtension: { '.js': '.cjs' },
  });
}
