import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { AgentReleases, compareVersions } from './agent-releases.js';

const HASH = 'a'.repeat(64);

function release(dir: string, version: string, files: string[]): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'release.json'), JSON.stringify({ version, commit: 'c0ffee' }));
  writeFileSync(join(dir, 'SHA256SUMS'), files.map((f) => `${HASH}  ${f}\n`).join(''));
  for (const f of files) {
    writeFileSync(join(dir, f), f);
  }
}

describe('AgentReleases', () => {
  const root = mkdtempSync(join(tmpdir(), 'lq-releases-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('should order versions numerically with a pre-release before its release', () => {
    const sorted = ['0.10.0', '0.2.0', '0.2.0~rc.1', '1.0.0', '0.9.1'].sort(compareVersions);
    expect(sorted).toEqual(['0.2.0~rc.1', '0.2.0', '0.9.1', '0.10.0', '1.0.0']);
  });

  it('should take the folder itself and each subfolder as releases, latest being the highest', () => {
    release(root, '0.2.0', ['limiquantix-agent-linux-amd64']);
    release(join(root, 'old'), '0.10.0', ['limiquantix-agent-linux-arm64']);
    release(join(root, 'rc'), '0.10.0~rc.1', []);
    mkdirSync(join(root, 'junk'));
    writeFileSync(join(root, 'junk', 'release.json'), 'not json');
    const releases = new AgentReleases(root);
    expect(releases.list().map((r) => r.version)).toEqual(['0.10.0', '0.10.0~rc.1', '0.2.0']);
    expect(releases.release('latest')?.version).toBe('0.10.0');
    expect(releases.release('0.2.0')?.commit).toBe('c0ffee');
    expect(releases.release('0.3.0')).toBeUndefined();
  });

  it('should serve listed files by name or short alias, and nothing else', () => {
    const releases = new AgentReleases(root);
    const r = releases.release('0.2.0')!;
    writeFileSync(join(root, 'unlisted.key'), 'secret');
    expect(releases.download(r, 'linux-amd64')).toMatchObject({
      name: 'limiquantix-agent-linux-amd64',
      sha256: HASH,
    });
    expect(releases.download(r, 'limiquantix-agent-linux-amd64')?.path).toBe(
      join(root, 'limiquantix-agent-linux-amd64'),
    );
    expect(releases.download(r, 'SHA256SUMS')?.name).toBe('SHA256SUMS');
    for (const name of ['unlisted.key', '../x', 'linux-arm64', '', 'old/release.json']) {
      expect({ name, file: releases.download(r, name) }).toEqual({ name, file: undefined });
    }
  });

  it('should serve the Windows executable (alias windows-amd64) and the MSI of a release', () => {
    const dir = join(root, 'win');
    const exe = 'limiquantix-agent-windows-amd64.exe';
    const msi = 'limiquantix-guest-agent-0.0.2-x64.msi';
    release(dir, '0.0.2', [exe, msi]);
    const releases = new AgentReleases(root);
    const r = releases.release('0.0.2')!;
    expect(releases.download(r, 'windows-amd64')).toMatchObject({ name: exe, sha256: HASH });
    expect(releases.download(r, msi)?.path).toBe(join(dir, msi));
  });

  it('should ignore SHA256SUMS lines that name a path or a dot file', () => {
    const dir = join(root, 'evil');
    release(dir, '0.0.1', []);
    writeFileSync(
      join(dir, 'SHA256SUMS'),
      `${HASH}  ../../etc/passwd\n${HASH}  .env\n${HASH}  sub/file\n${HASH}  ok\n`,
    );
    writeFileSync(join(dir, 'ok'), 'ok');
    const r = new AgentReleases(root).release('0.0.1')!;
    expect([...r.files.keys()]).toEqual(['ok']);
  });

  it('should find none when the folder does not exist', () => {
    expect(new AgentReleases(join(root, 'nowhere')).list()).toEqual([]);
  });
});
