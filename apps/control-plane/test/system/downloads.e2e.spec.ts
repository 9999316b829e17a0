// The agent downloads (apps/control-plane/src/downloads) from a real control plane process: the
// seed's `curl …/downloads/agent/latest/linux-amd64 -o a && chmod +x a && ./a --version`, run as
// printed, against a release folder build-packages.mjs made from the executables; versions side
// by side; nothing outside a release's SHA256SUMS served; no credentials needed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Agent, get } from 'node:http';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startNatsServer, type RunningNats } from '../../../../test/support/nats-server.js';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/postgres.js';
import {
  startControlPlaneProcess,
  type RunningControlPlane,
} from '../../../../test/support/control-plane-process.js';

const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const VERSION = String(
  (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
    .version,
).replaceAll('-', '~');

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('agent downloads (/downloads/agent)', () => {
  let work: string;
  let nats: RunningNats | undefined;
  let db: TestDatabase | undefined;
  let cp: RunningControlPlane | undefined;
  let url: string;
  let sums: Map<string, string>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'lq-downloads-'));
    const releases = join(work, 'releases');
    // The current release, plain executables only (no package compression: quick), as
    // `npm run package` lays it out, in a folder of its own...
    const build = spawnSync(
      process.execPath,
      [
        'deploy/packaging/build-packages.mjs',
        'bin',
        '--arch',
        'amd64',
        '--out',
        join(releases, VERSION),
      ],
      { cwd: REPO_ROOT, encoding: 'utf8' },
    );
    if (build.status !== 0) {
      throw new Error(`build-packages.mjs failed:\n${build.stdout}${build.stderr}`);
    }
    sums = new Map(
      readFileSync(join(releases, VERSION, 'SHA256SUMS'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => [l.split('  ')[1]!, l.split('  ')[0]!]),
    );
    // ...beside an older one.
    const old = join(releases, '0.0.9');
    mkdirSync(old);
    writeFileSync(join(old, 'limiquantix-agent-linux-amd64'), 'old agent\n');
    writeFileSync(
      join(old, 'SHA256SUMS'),
      `${sha256(Buffer.from('old agent\n'))}  limiquantix-agent-linux-amd64\n`,
    );
    writeFileSync(
      join(old, 'release.json'),
      JSON.stringify({ name: 'limiquantix-guest-agent', version: '0.0.9', commit: 'abc' }),
    );
    // A file in the folder that no SHA256SUMS lists must never be served.
    writeFileSync(join(releases, VERSION, 'private.key'), 'secret\n');
    cpSync(join(REPO_ROOT, 'package.json'), join(releases, 'package.json'));

    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('lq_downloads')]);
    cp = await startControlPlaneProcess({
      databaseUrl: db.url,
      natsUrl: nats.url,
      env: { LQ_AGENT_DOWNLOADS_DIR: releases },
    });
    url = cp.url;
  });

  afterAll(async () => {
    await cp?.stop();
    await nats?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it("should serve the seed's curl of latest/linux-amd64 without credentials, an executable whose sha256 SHA256SUMS lists", () => {
    const dir = join(work, 'curl');
    mkdirSync(dir);
    // As a user types it.
    const r = spawnSync(
      'sh',
      [
        '-c',
        `curl -sSf ${url}/downloads/agent/latest/linux-amd64 -o a && chmod +x a && ./a --version`,
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+ \(protocol \d+\) commit \S+ target linux-amd64\n$/);
    const published = spawnSync('curl', ['-sSf', `${url}/downloads/agent/latest/SHA256SUMS`], {
      encoding: 'utf8',
    }).stdout;
    const line = published.split('\n').find((l) => l.endsWith('  limiquantix-agent-linux-amd64'));
    expect(line?.split('  ')[0]).toBe(sha256(readFileSync(join(dir, 'a'))));
  });

  it('should give the same file by its full name and by version, with its checksum in the headers', async () => {
    const byVersion = await fetch(
      `${url}/downloads/agent/${VERSION}/limiquantix-agent-linux-amd64`,
    );
    expect(byVersion.status).toBe(200);
    expect(byVersion.headers.get('content-type')).toBe('application/octet-stream');
    expect(byVersion.headers.get('x-checksum-sha256')).toBe(
      sums.get('limiquantix-agent-linux-amd64'),
    );
    expect(byVersion.headers.get('cache-control')).toBe('public, max-age=86400');
    const body = Buffer.from(await byVersion.arrayBuffer());
    expect(sha256(body)).toBe(sums.get('limiquantix-agent-linux-amd64'));
    const musl = await fetch(`${url}/downloads/agent/latest/linux-amd64-musl`);
    expect(sha256(Buffer.from(await musl.arrayBuffer()))).toBe(
      sums.get('limiquantix-agent-linux-amd64-musl'),
    );
    const installer = await fetch(`${url}/downloads/agent/latest/install-agent.sh`);
    expect(installer.headers.get('content-type')).toMatch(/^text\/x-shellscript/);
    expect(await installer.text()).toMatch(/^#!\/bin\/sh\n/);
  });

  it('should keep an idle connection open past 5 s (LQ_HTTP_KEEP_ALIVE_TIMEOUT_MS) for the next download on it', async () => {
    // Node's default closes a connection 5 s after a response went out; a client busy that long
    // (hashing a 110 MB download, as the test above does) then sends its next request on a
    // socket that is closing, and fails with "other side closed".
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const once = () =>
      new Promise<{ reused: boolean; keepAlive: string | undefined; body: string }>(
        (resolve, reject) => {
          const req = get(`${url}/downloads/agent/latest/SHA256SUMS`, { agent }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () =>
              resolve({
                reused: req.reusedSocket,
                keepAlive: res.headers['keep-alive'] as string,
                body,
              }),
            );
          });
          req.on('error', reject);
        },
      );
    try {
      const first = await once();
      expect(first.keepAlive).toBe('timeout=65');
      await sleep(6000);
      const second = await once();
      expect(second.reused).toBe(true);
      expect(second.body).toBe(first.body);
    } finally {
      agent.destroy();
    }
  }, 30_000);

  it('should list the releases newest first and serve an older one by its version', async () => {
    expect(await (await fetch(`${url}/downloads/agent`)).json()).toEqual({
      latest: VERSION,
      versions: [VERSION, '0.0.9'],
    });
    const latest = (await (await fetch(`${url}/downloads/agent/latest`)).json()) as {
      version: string;
      files: Array<{ name: string; sha256: string }>;
      aliases: Record<string, string>;
    };
    expect(latest.version).toBe(VERSION);
    expect(new Map(latest.files.map((f) => [f.name, f.sha256]))).toEqual(sums);
    expect(latest.aliases['linux-amd64']).toBe('limiquantix-agent-linux-amd64');
    const old = await fetch(`${url}/downloads/agent/0.0.9/linux-amd64`);
    expect(await old.text()).toBe('old agent\n');
  });

  it('should answer 404 naming what exists for an unknown version or file, and never serve an unlisted one', async () => {
    const version = await fetch(`${url}/downloads/agent/9.9.9/linux-amd64`);
    expect(version.status).toBe(404);
    expect(((await version.json()) as { message: string }).message).toMatch(
      /no agent release "9\.9\.9": latest or one of .*0\.0\.9/,
    );
    const missing = await fetch(`${url}/downloads/agent/latest/windows-amd64`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { message: string }).message).toMatch(
      /has no file "windows-amd64": one of linux-amd64, /,
    );
    for (const path of [
      'latest/private.key',
      'latest/..%2Fpackage.json',
      'latest/%2E%2E%2F%2E%2E%2Fpackage.json',
      '..%2F..%2Fpackage.json/x',
    ]) {
      const r = await fetch(`${url}/downloads/agent/${path}`);
      expect({ path, status: r.status }).toEqual({ path, status: 404 });
      const text = await r.text();
      expect(text).not.toContain('secret');
      expect(text).not.toContain('devDependencies');
    }
    // A path below /downloads that no route matches is the API's 404, not the web console.
    const deep = await fetch(`${url}/downloads/agent/latest/linux-amd64/x`);
    expect(deep.status).toBe(404);
    expect(deep.headers.get('content-type')).toMatch(/json/);
  });
});
