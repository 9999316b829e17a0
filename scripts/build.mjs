#!/usr/bin/env node
// Bundles what ships as single files: the guest agent (a guest needs Node.js and this file,
// nothing else) and agentctl. Fast enough (~100 ms) to run before every test run.
import { build } from 'esbuild';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, resolve } from 'node:path';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const common = {
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  sourcemap: 'linked',
  legalComments: 'none',
  tsconfig: resolve(root, 'tsconfig.json'),
  logLevel: 'warning',
};

await build({
  ...common,
  entryPoints: {
    'limiquantix-agent': resolve(root, 'apps/guest-agent/src/main.ts'),
    agentctl: resolve(root, 'apps/guest-agent/src/agentctl/main.ts'),
    // Many simulated VMs' agents in one process (scripts/sim-core.mjs, agentsPerProcess).
    'limiquantix-sim-host': resolve(root, 'apps/guest-agent/src/sim-host/main.ts'),
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
    },
    outdir: resolve(root, 'dist/bench'),
    // Test-support modules locate the repository from import.meta.url; in this CJS bundle it
    // stands for a file in scripts/, where sim-core.mjs lives.
    define: {
      'import.meta.url': JSON.stringify(pathToFileURL(resolve(root, 'scripts/bench.mjs')).href),
    },
    outExtension: { '.js': '.cjs' },
  });
}
