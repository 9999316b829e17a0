#!/usr/bin/env node
// Compiles the NestJS tiers (node daemon now; the control plane next) with tsc, which emits the
// decorator metadata Nest's dependency injection needs (esbuild and swc-in-monorepo do not),
// then rewrites the @lq/* path aliases to relative imports. Output: dist/tsc/.
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => resolve(root, 'node_modules', '.bin', name);
execFileSync(bin('tsc'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
execFileSync(bin('tsc-alias'), ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
