#!/usr/bin/env node
// `npm run package`: a signed agent release in dist/packages (or --out DIR).
//
//   1. the release key: LQ_RELEASE_KEY (PEM text, e.g. a CI secret) or LQ_RELEASE_KEY_FILE (a
//      PEM file), an Ed25519 private key; neither: a development key, made once in
//      .limiquantix/release-dev-key.pem (git-ignored) and said so loudly — agents built here
//      trust it, no one else does;
//   2. scripts/build.mjs (the Node bundles build-packages.mjs reads; --no-bundle: as they are),
//      then the executables of every target (scripts/build-executables.mjs --version) with the
//      key's public half built in (besides LQ_RELEASE_PUBLIC_KEYS or
//      deploy/keys/release-public-keys.txt), into a temporary folder — dist/agent is left alone;
//   3. deploy/packaging/build-packages.mjs --executables that folder, with this script's other
//      arguments ([deb|rpm|bin|win]... [--arch A] [--out DIR] [--fast]); no format named: all
//      four, the Windows .exe and .msi included;
//   4. release-manifest.json signed with the key (scripts/sign-agent-release.mjs), which
//      `lqctl agent release import DIR` and the control plane's downloads directory take.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  SignError,
  publicKeyOf,
  releasePrivateKey,
  signReleaseFolder,
} from './sign-agent-release.mjs';
import { BuildError, TARGETS, WINDOWS_TARGETS, buildExecutables } from './build-executables.mjs';

const FORMATS = ['deb', 'rpm', 'bin', 'win'];

/**
 * The formats named on the command line, or all of them (the Windows .exe and .msi too), and
 * the executables they need.
 */
export function formatsAndTargets(args) {
  const named = args.filter((a) => FORMATS.includes(a));
  const formats = named.length > 0 ? named : FORMATS;
  const targets = [
    ...(formats.some((f) => f !== 'win') ? Object.keys(TARGETS) : []),
    ...(formats.includes('win') ? Object.keys(WINDOWS_TARGETS) : []),
  ];
  return { formats, targets, implied: named.length === 0 };
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEV_KEY = join(ROOT, '.limiquantix/release-dev-key.pem');

function fail(message) {
  process.stderr.write(`package: ${message}\n`);
  process.exit(2);
}

/** The signing key and where it came from. */
function releaseKey(env = process.env) {
  if (env.LQ_RELEASE_KEY) {
    return { key: releasePrivateKey(env.LQ_RELEASE_KEY, 'LQ_RELEASE_KEY'), from: 'LQ_RELEASE_KEY' };
  }
  if (env.LQ_RELEASE_KEY_FILE) {
    const file = resolve(env.LQ_RELEASE_KEY_FILE);
    if (!existsSync(file)) {
      throw new SignError(`LQ_RELEASE_KEY_FILE ${file} does not exist`);
    }
    return {
      key: releasePrivateKey(readFileSync(file), `LQ_RELEASE_KEY_FILE ${file}`),
      from: file,
    };
  }
  if (!existsSync(DEV_KEY)) {
    mkdirSync(dirname(DEV_KEY), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(`${DEV_KEY}.tmp`, privateKey.export({ format: 'pem', type: 'pkcs8' }), {
      mode: 0o600,
    });
    renameSync(`${DEV_KEY}.tmp`, DEV_KEY);
  }
  return { key: releasePrivateKey(readFileSync(DEV_KEY), DEV_KEY), from: DEV_KEY, dev: true };
}

/** The keys scripts/build.mjs would build in, plus `extra`, as LQ_RELEASE_PUBLIC_KEYS. */
function publicKeysWith(extra) {
  const file = join(ROOT, 'deploy/keys/release-public-keys.txt');
  const text =
    process.env.LQ_RELEASE_PUBLIC_KEYS ?? (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const keys = text
    .split('\n')
    .flatMap((line) => line.replace(/#.*/, '').split(','))
    .map((k) => k.trim())
    .filter(Boolean);
  return [...new Set([...keys, extra])].join(',');
}

function step(args, env) {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit', env });
  if (r.status !== 0) {
    throw new BuildError(`node ${args.join(' ')} failed (${r.status ?? r.signal})`);
  }
}

function outDirOf(args) {
  const i = args.indexOf('--out');
  const eq = args.find((a) => a.startsWith('--out='));
  const dir = i !== -1 ? args[i + 1] : eq?.slice('--out='.length);
  return resolve(dir ?? join(ROOT, 'dist/packages'));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2).filter((a) => a !== '--no-bundle');
  let signer;
  try {
    signer = releaseKey();
  } catch (err) {
    fail(err.message);
  }
  const publicKey = publicKeyOf(signer.key);
  if (!process.argv.includes('--no-bundle')) {
    try {
      step([join(ROOT, 'scripts/build.mjs')], process.env);
    } catch (err) {
      fail(err.message);
    }
  }
  const version =
    process.env.LQ_BUILD_VERSION ||
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const staging = mkdtempSync(join(tmpdir(), 'lq-package-'));
  let targets;
  let failure;
  try {
    // build-executables bundles again (scripts/build.mjs --executable-bundle) with this env.
    process.env.LQ_RELEASE_PUBLIC_KEYS = publicKeysWith(publicKey);
    const { formats, targets: wanted, implied } = formatsAndTargets(args);
    buildExecutables({ outDir: staging, version, targets: wanted });
    step(
      [
        join(ROOT, 'deploy/packaging/build-packages.mjs'),
        '--executables',
        staging,
        ...(implied ? formats : []),
        ...args,
      ],
      process.env,
    );
    // The manifest signs self-update executables; Windows agents do not self-update (WINDOWS.md),
    // so a Windows-only run into a folder without Linux executables has nothing to sign.
    targets = wanted.some((t) => TARGETS[t])
      ? signReleaseFolder(outDirOf(args), signer.key)
      : undefined;
  } catch (err) {
    failure = err instanceof BuildError || err instanceof SignError ? err.message : err.stack;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  if (failure) {
    fail(failure);
  }
  const out = outDirOf(args);
  if (targets === undefined) {
    process.stdout.write(
      `${relative(process.cwd(), out) || '.'}: Windows files only, nothing signed (Windows agents do not self-update)\n`,
    );
    process.exit(0);
  }
  process.stdout.write(
    `${relative(process.cwd(), join(out, 'release-manifest.json'))}: ${targets.join(', ')} signed by ${publicKey}\n`,
  );
  if (signer.dev) {
    process.stderr.write(
      `package: NOTE: signed with the DEVELOPMENT release key ${relative(process.cwd(), DEV_KEY)} (made here, git-ignored).\n` +
        `package: Agents built here trust it and no others do; for a real release set LQ_RELEASE_KEY_FILE\n` +
        `package: (or LQ_RELEASE_KEY) to the release key, and LQ_AGENT_RELEASE_KEYS=${publicKey} on a control plane\n` +
        `package: that should offer this build.\n`,
    );
  }
}
