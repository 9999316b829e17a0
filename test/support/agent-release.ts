// Agent releases for tests of the self-update (issue 19): Node bundles of the agent built with a
// chosen version, a deliberately broken build, and release folders signed with a test key the
// way `lqctl agent release sign` signs a real one.
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { rawPublicKey, signRelease } from '@lq/proto';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The build target a Node bundle reports (build-info.ts). */
export const NODE_TARGET = `node-${process.platform}-${process.arch}`;

export interface ReleaseKey {
  key: KeyObject;
  /** base64 raw public key, as agents and LQ_AGENT_RELEASE_KEYS take it. */
  publicKey: string;
}

export function releaseKey(): ReleaseKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { key: privateKey, publicKey: rawPublicKey(privateKey) };
}

/** The agent's Node bundle (main.ts, what `npm run agent` runs), reporting `version`. */
export async function buildAgentBundle(
  version: string,
  outFile: string,
  options: { banner?: string } = {},
): Promise<void> {
  await build({
    ...(options.banner ? { banner: { js: options.banner } } : {}),
    entryPoints: [resolve(ROOT, 'apps/guest-agent/src/main.ts')],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    logLevel: 'warning',
    tsconfig: resolve(ROOT, 'tsconfig.json'),
    external: ['bun:ffi'],
    define: {
      __LQ_COMMIT__: JSON.stringify('test'),
      __LQ_VERSION__: JSON.stringify(version),
      __LQ_RELEASE_KEYS__: JSON.stringify(''),
    },
  });
}

/** A "release" whose executable exits at once with code 3: what a bad build does. */
export function writeBrokenBuild(outFile: string): void {
  writeFileSync(outFile, "process.stderr.write('broken build\\n');\nprocess.exit(3);\n");
}

export function sha256Of(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

export interface ReleaseFile {
  target: string;
  /** A file to copy into the release under `name`. */
  from: string;
  name: string;
}

/**
 * A release folder as the control plane reads it: the files, SHA256SUMS, release.json and the
 * signed release-manifest.json.
 */
export function writeRelease(
  dir: string,
  version: string,
  files: ReleaseFile[],
  key: ReleaseKey,
): void {
  mkdirSync(dir, { recursive: true });
  const artifacts = files.map((f) => {
    const bytes = readFileSync(f.from);
    writeFileSync(join(dir, f.name), bytes, { mode: 0o755 });
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const size = bytes.length;
    const signature = signRelease(key.key, { version, target: f.target, sha256, size });
    return {
      target: f.target,
      file: f.name,
      sha256,
      size,
      signature: signature.toString('base64'),
    };
  });
  writeFileSync(join(dir, 'SHA256SUMS'), artifacts.map((a) => `${a.sha256}  ${a.file}\n`).join(''));
  writeFileSync(
    join(dir, 'release.json'),
    JSON.stringify({ name: 'limiquantix-guest-agent', version, commit: 'test', files: [] }),
  );
  writeFileSync(join(dir, 'release-manifest.json'), JSON.stringify({ version, artifacts }));
}

/** Processes whose command line mentions `marker` (a test's own temporary directory). */
export function processesMentioning(marker: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (
        Number(pid) !== process.pid &&
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)
      ) {
        pids.push(Number(pid));
      }
    } catch {
      // gone
    }
  }
  return pids;
}

/** Ends the processes a test started under its directory (agents restarted by a watchdog). */
export function killProcessesMentioning(marker: string): void {
  for (const pid of processesMentioning(marker)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

export function sizeOf(file: string): number {
  return statSync(file).size;
}
