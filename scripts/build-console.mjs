#!/usr/bin/env node
// Builds the web console (apps/console, React + Vite) into dist/console, which the control plane
// serves at /. Skips the build when nothing under apps/console changed since the last one
// (a stamp in dist/.console-build records the newest input), so `npm start` and the test
// setup pay for it once. --force rebuilds anyway.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const app = join(root, 'apps/console');
const out = join(root, 'dist/console');
const stampFile = join(root, 'dist/.console-build');

/** The newest modification time among the console's inputs (tests and docs excluded). */
function newestInput() {
  let newest = 0;
  const visit = (p) => {
    const s = statSync(p);
    if (s.isDirectory()) {
      for (const name of readdirSync(p)) {
        if (name !== 'node_modules') {
          visit(join(p, name));
        }
      }
    } else if (!/\.test\.tsx?$|\.md$/.test(p)) {
      newest = Math.max(newest, s.mtimeMs);
    }
  };
  visit(app);
  // The API's types the console imports (@lq/api), and the installed versions of its dependencies.
  visit(join(root, 'libs/api/src'));
  const lock = join(root, 'package-lock.json');
  if (existsSync(lock)) {
    newest = Math.max(newest, statSync(lock).mtimeMs);
  }
  return String(Math.floor(newest));
}

const stamp = newestInput();
const upToDate =
  !process.argv.includes('--force') &&
  existsSync(join(out, 'index.html')) &&
  existsSync(stampFile) &&
  readFileSync(stampFile, 'utf8').trim() === stamp;

if (!upToDate) {
  const started = Date.now();
  const { build } = await import('vite');
  await build({ configFile: join(app, 'vite.config.mjs'), logLevel: 'warn' });
  writeFileSync(stampFile, `${stamp}\n`);
  if (!process.argv.includes('--quiet')) {
    process.stdout.write(`web console built into dist/console in ${Date.now() - started} ms\n`);
  }
}
