#!/usr/bin/env node
// Compiles the guest agent into one self-contained executable per platform with
// `bun build --compile` (the npm package `bun`: it cross-compiles from one machine, fetching each
// target's runtime from the npm registry once). The input is the bundle scripts/build.mjs makes
// of apps/guest-agent/src/executable.ts (the agent, and agentctl as `limiquantix-agent ctl`), so
// the executables run exactly the TypeScript the tests and the simulated VMs run.
//
//   node scripts/build.mjs && node scripts/build-executables.mjs [--target T]... [--out DIR]
//   node scripts/build-executables.mjs --version 0.2.0-test --out DIR   # another version stamped
//
// Each executable is cached under $LQ_CACHE_DIR (default <repo>/.cache, git-ignored), keyed by
// the bundle's bytes, bun's version, the target and the flags: an unchanged agent is not compiled
// again. Files are replaced by rename, so an agent already running from DIR keeps its inode.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = join(ROOT, 'dist/guest-agent/limiquantix-agent-executable.cjs');
export const OUT_DIR = join(ROOT, 'dist/agent');
export const CACHE_DIR = resolve(process.env.LQ_CACHE_DIR || join(ROOT, '.cache'));

/** Our name of each platform → bun's compile target: what is built unless targets are named. */
export const TARGETS = {
  'linux-amd64': 'bun-linux-x64',
  'linux-arm64': 'bun-linux-arm64',
  'linux-amd64-musl': 'bun-linux-x64-musl',
};

/**
 * Built only when named (npm run package, the Windows packaging test): no test of the Linux
 * agent runs it, and compiling it would add its time and 115 MB to every test run's set-up.
 */
export const WINDOWS_TARGETS = {
  'windows-amd64': 'bun-windows-x64',
};

export const ALL_TARGETS = { ...TARGETS, ...WINDOWS_TARGETS };

// --minify and --bytecode: less to parse at start (bytecode: about 25 ms off the first pong here,
// 3 MB more file). No .env or bunfig.toml is read at run time: the agent runs as root from
// whatever directory it was started in, and a file there must not change it.
const FLAGS = [
  '--minify',
  '--bytecode',
  '--no-compile-autoload-dotenv',
  '--no-compile-autoload-bunfig',
];
const KEEP_PER_TARGET = 2;

export class BuildError extends Error {}

/** The file name a platform's executable is published under (.exe for Windows). */
export const executableName = (target) =>
  `limiquantix-agent-${target}${target.startsWith('windows-') ? '.exe' : ''}`;

/**
 * bun's own binary. npm's `bun` package links it into place with a postinstall script; where
 * install scripts did not run, the platform package (@oven/bun-linux-x64…) still holds it.
 */
export function bunBinary() {
  const require = createRequire(join(ROOT, 'package.json'));
  const candidates = [];
  try {
    candidates.push(join(dirname(require.resolve('bun/package.json')), 'bin/bun.exe'));
  } catch {
    // not installed: the error below says so
  }
  for (const platform of [
    'bun-linux-x64',
    'bun-linux-x64-baseline',
    'bun-linux-x64-musl',
    'bun-linux-aarch64',
    'bun-linux-aarch64-musl',
  ]) {
    try {
      candidates.push(join(dirname(require.resolve(`@oven/${platform}/package.json`)), 'bin/bun'));
    } catch {
      // not this platform
    }
  }
  for (const candidate of candidates) {
    if (existsSync(candidate) && spawnSync(candidate, ['--version']).status === 0) {
      return candidate;
    }
  }
  throw new BuildError(
    `no runnable bun binary (tried ${candidates.join(', ') || 'none'}): run npm ci, which installs the npm package bun`,
  );
}

function hashOf(...parts) {
  const h = createHash('sha256');
  for (const part of parts) {
    h.update(part);
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/** Deletes all but the newest KEEP_PER_TARGET cached executables of a target (110 MB each). */
function prune(cacheDir, target) {
  const mine = readdirSync(cacheDir)
    .filter((f) => f.startsWith(`${target}-`) && !f.includes('.tmp'))
    .map((f) => ({ f, t: statSync(join(cacheDir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { f } of mine.slice(KEEP_PER_TARGET)) {
    rmSync(join(cacheDir, f), { force: true });
  }
}

/** Release versions as the control plane and the agent accept them. */
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/;

/**
 * The executable bundle again, reporting `version` (scripts/build.mjs --executable-bundle with
 * LQ_BUILD_VERSION), under the cache directory; returns its path.
 */
function versionedBundle(version) {
  if (!VERSION.test(version)) {
    throw new BuildError(
      `--version ${JSON.stringify(version)} must be 1-64 of A-Z a-z 0-9 . + ~ _ - starting with a letter or digit`,
    );
  }
  const dir = join(CACHE_DIR, 'agent-bundles');
  mkdirSync(dir, { recursive: true });
  // Per process: another run may stamp the same version with other release keys.
  const file = join(dir, `limiquantix-agent-executable-${version}-${process.pid}.cjs`);
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'scripts/build.mjs'), '--executable-bundle', file],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, LQ_BUILD_VERSION: version } },
  );
  if (r.status !== 0) {
    throw new BuildError(
      `bundling version ${version} failed (${r.status}):\n${r.stdout}${r.stderr}`,
    );
  }
  return file;
}

/**
 * Compiles (or takes from the cache) the executable of each target into outDir and returns
 * { target: path }. The bundle must exist (node scripts/build.mjs).
 */
export function buildExecutables({
  targets = Object.keys(TARGETS),
  outDir = OUT_DIR,
  version,
  log = (line) => process.stderr.write(`${line}\n`),
} = {}) {
  for (const target of targets) {
    if (!ALL_TARGETS[target]) {
      throw new BuildError(
        `unknown target ${target}: one of ${Object.keys(ALL_TARGETS).join(', ')}`,
      );
    }
  }
  const bundleFile = version === undefined ? BUNDLE : versionedBundle(version);
  if (!existsSync(bundleFile)) {
    throw new BuildError(`${bundleFile} is missing: run node scripts/build.mjs first`);
  }
  const bun = bunBinary();
  const bunVersion = spawnSync(bun, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const bundle = readFileSync(bundleFile);
  const cacheDir = join(CACHE_DIR, 'agent-executables');
  mkdirSync(cacheDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const built = {};
  for (const target of targets) {
    const cached = join(cacheDir, `${target}-${hashOf(bundle, bunVersion, target, ...FLAGS)}`);
    if (!existsSync(cached)) {
      const started = Date.now();
      const tmp = `${cached}.tmp-${process.pid}`;
      const r = spawnSync(
        bun,
        [
          'build',
          '--compile',
          `--target=${ALL_TARGETS[target]}`,
          ...FLAGS,
          '--define',
          `__LQ_TARGET__=${JSON.stringify(target)}`,
          bundleFile,
          '--outfile',
          tmp,
        ],
        { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
      );
      // bun names a Windows executable *.exe whatever --outfile says.
      if (!existsSync(tmp) && existsSync(`${tmp}.exe`)) {
        renameSync(`${tmp}.exe`, tmp);
      }
      if (r.status !== 0 || !existsSync(tmp)) {
        rmSync(tmp, { force: true });
        throw new BuildError(
          `bun build --compile --target=${ALL_TARGETS[target]} failed (${r.status ?? r.error?.message}):\n${r.stdout}${r.stderr}`,
        );
      }
      renameSync(tmp, cached);
      prune(cacheDir, target);
      log(
        `build-executables: ${target} compiled in ${Date.now() - started} ms (bun ${bunVersion})`,
      );
    }
    const out = join(outDir, executableName(target));
    const same =
      existsSync(out) &&
      statSync(out).size === statSync(cached).size &&
      statSync(out).mtimeMs >= statSync(cached).mtimeMs;
    if (!same) {
      const tmp = `${out}.tmp-${process.pid}`;
      copyFileSync(cached, tmp);
      renameSync(tmp, out);
    }
    built[target] = out;
  }
  if (bundleFile !== BUNDLE) {
    rmSync(bundleFile, { force: true });
    rmSync(`${bundleFile}.map`, { force: true });
  }
  return built;
}

const USAGE = `Usage: node scripts/build-executables.mjs [--target T]... [--out DIR] [--version V]

Compiles dist/guest-agent/limiquantix-agent-executable.cjs (node scripts/build.mjs) into
DIR/limiquantix-agent-<T> (default DIR: dist/agent) for each target T, or all of:
${Object.keys(TARGETS).join(', ')}; ${Object.keys(WINDOWS_TARGETS).join(', ')} (…-<T>.exe) only when
named. Cached in $LQ_CACHE_DIR (default .cache).

--version V bundles the agent again reporting version V (node scripts/build.mjs
--executable-bundle with LQ_BUILD_VERSION=V) and compiles that instead: a second release of the
same source, e.g. for self-update tests. Give it another --out, or it replaces dist/agent's.
`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { values } = parseArgs({
      options: {
        target: { type: 'string', multiple: true },
        out: { type: 'string' },
        version: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
    } else {
      const built = buildExecutables({
        targets: values.target,
        outDir: values.out ? resolve(values.out) : OUT_DIR,
        version: values.version,
      });
      process.stdout.write(`${Object.values(built).join('\n')}\n`);
    }
  } catch (err) {
    if (err instanceof BuildError || err?.code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`build-executables: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
