// `npm run package` signs the release it builds (scripts/package.mjs, issue 19): the release key
// from LQ_RELEASE_KEY_FILE, its public half built into every executable, release-manifest.json
// beside SHA256SUMS; and `lqctl agent release import DIR` takes that folder as it is into a real
// control plane (PostgreSQL, nats-server) that trusts the key, which then offers the release.
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AgentReleaseListView } from '@lq/api';
import { rawPublicKey, releaseStatement, verifiedBy } from '@lq/proto';
import { startNatsServer, type RunningNats } from '../support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  TEST_ADMIN_TOKEN,
  adminFetch,
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../support/control-plane-process.js';
import { REPO_ROOT } from '../support/service-process.js';

const TARGETS = ['linux-amd64', 'linux-amd64-musl', 'linux-arm64'];

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ status: number; stdout: string; stderr: string }> {
  // Asynchronous: this process keeps serving while the child runs.
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { cwd: REPO_ROOT, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('npm run package: a signed release lqctl imports', () => {
  let work: string;
  let out: string;
  let publicKey: string;
  let version: string;
  let packaged: { status: number; stdout: string; stderr: string };
  let nats: RunningNats | undefined;
  let db: TestDatabase | undefined;
  let cp: RunningControlPlane | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-release-sign-'));
    out = join(work, 'release');
    const { privateKey } = generateKeyPairSync('ed25519');
    publicKey = rawPublicKey(privateKey);
    const keyFile = join(work, 'release-key.pem');
    writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    version = (
      JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
    // The plain executables only (no .deb/.rpm: packages.spec.ts covers those); --no-bundle:
    // the bundles the global setup built, untouched while other suites run them.
    packaged = await run(['scripts/package.mjs', 'bin', '--fast', '--out', out, '--no-bundle'], {
      LQ_RELEASE_KEY_FILE: keyFile,
    });
  }, 600_000);

  afterAll(async () => {
    await cp?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 30_000);

  it('should sign every executable with the release key and build its public key in', () => {
    if (packaged.status !== 0) {
      throw new Error(`scripts/package.mjs exited ${packaged.status}:\n${packaged.stderr}`);
    }
    expect(packaged.stdout).toContain(`signed by ${publicKey}`);
    expect(packaged.stderr).not.toContain('DEVELOPMENT release key');
    const manifest = JSON.parse(readFileSync(join(out, 'release-manifest.json'), 'utf8')) as {
      version: string;
      artifacts: Array<{
        target: string;
        file: string;
        sha256: string;
        size: number;
        signature: string;
      }>;
    };
    expect(manifest.version).toBe(version);
    expect(manifest.artifacts.map((a) => a.target).sort()).toEqual(TARGETS);
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8');
    for (const a of manifest.artifacts) {
      expect(sums).toContain(`${a.sha256}  ${a.file}\n`);
      expect(
        verifiedBy(
          [publicKey],
          releaseStatement({ version, target: a.target, sha256: a.sha256, size: a.size }),
          Buffer.from(a.signature, 'base64'),
        ),
      ).toBe(publicKey);
      // The agent's built-in release keys (build-info.ts) hold this key.
      expect(readFileSync(join(out, a.file)).includes(Buffer.from(publicKey))).toBe(true);
    }
  });

  it('should import the folder as it is with lqctl agent release import, and offer it', async () => {
    expect(packaged.status).toBe(0);
    const downloads = join(work, 'downloads');
    mkdirSync(downloads);
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_relsign')]);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_AGENT_DOWNLOADS_DIR: downloads, LQ_AGENT_RELEASE_KEYS: publicKey },
    });
    const imported = await run([
      'dist/lqctl/lqctl.cjs',
      '--server',
      cp.url,
      '--token',
      TEST_ADMIN_TOKEN,
      'agent',
      'release',
      'import',
      out,
    ]);
    if (imported.status !== 0) {
      throw new Error(`lqctl agent release import exited ${imported.status}: ${imported.stderr}`);
    }
    expect(imported.stdout).toContain(`release ${version} published`);
    const listed = (await (
      await adminFetch(`${cp.url}/api/agent/releases`)
    ).json()) as AgentReleaseListView;
    const release = listed.releases.find((r) => r.version === version);
    expect(release).toMatchObject({ updatable: true });
    expect(release!.artifacts.map((a) => [a.target, a.verified]).sort()).toEqual(
      TARGETS.map((t) => [t, true]),
    );
  }, 180_000);
});
