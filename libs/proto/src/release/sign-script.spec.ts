// scripts/sign-agent-release.mjs writes the release statement on its own (it runs where only
// Node.js is): its signatures must verify as the agent verifies them.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  keyListStatement,
  parseKeyList,
  rawPublicKey,
  releaseStatement,
  verifiedBy,
} from './release-signature.js';

const SCRIPT = fileURLToPath(
  new URL('../../../../scripts/sign-agent-release.mjs', import.meta.url),
);

describe('sign-agent-release.mjs', () => {
  it('should write a manifest whose signatures verify with the release key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-sign-'));
    try {
      const { privateKey } = generateKeyPairSync('ed25519');
      writeFileSync(join(dir, 'key.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
      const exe = Buffer.from('an executable');
      writeFileSync(join(dir, 'limiquantix-agent-linux-amd64'), exe);
      const sha256 = createHash('sha256').update(exe).digest('hex');
      writeFileSync(join(dir, 'SHA256SUMS'), `${sha256}  limiquantix-agent-linux-amd64\n`);
      writeFileSync(join(dir, 'release.json'), JSON.stringify({ version: '0.2.0' }));
      execFileSync(process.execPath, [SCRIPT, dir, '--key', join(dir, 'key.pem')]);
      const manifest = JSON.parse(readFileSync(join(dir, 'release-manifest.json'), 'utf8')) as {
        version: string;
        artifacts: Array<{ target: string; sha256: string; size: number; signature: string }>;
      };
      const [a] = manifest.artifacts;
      expect(a).toMatchObject({ target: 'linux-amd64', sha256, size: exe.length });
      const pub = rawPublicKey(privateKey);
      expect(
        verifiedBy(
          [pub],
          releaseStatement({ version: '0.2.0', target: a!.target, sha256, size: a!.size }),
          Buffer.from(a!.signature, 'base64'),
        ),
      ).toBe(pub);
      const printed = execFileSync(process.execPath, [
        SCRIPT,
        '--public-key',
        join(dir, 'key.pem'),
      ]).toString();
      expect(printed.trim()).toBe(pub);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should write a key list the agent accepts, signed by the old key, when rotating keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lq-keylist-'));
    try {
      const old = generateKeyPairSync('ed25519').privateKey;
      writeFileSync(join(dir, 'old.pem'), old.export({ format: 'pem', type: 'pkcs8' }));
      const next = rawPublicKey(generateKeyPairSync('ed25519').privateKey);
      execFileSync(process.execPath, [
        SCRIPT,
        '--key-list',
        dir,
        '--key',
        join(dir, 'old.pem'),
        '--trust',
        `${rawPublicKey(old)},${next}`,
      ]);
      const list = readFileSync(join(dir, 'release-keys.json'));
      const signature = Buffer.from(
        readFileSync(join(dir, 'release-keys.json.sig'), 'utf8').trim(),
        'base64',
      );
      expect(verifiedBy([rawPublicKey(old)], keyListStatement(list), signature)).toBe(
        rawPublicKey(old),
      );
      expect(parseKeyList(list).keys).toEqual([rawPublicKey(old), next]);
      // A key that is not one is refused, and nothing is written.
      rmSync(join(dir, 'release-keys.json'));
      expect(() =>
        execFileSync(
          process.execPath,
          [SCRIPT, '--key-list', dir, '--key', join(dir, 'old.pem'), '--trust', 'bm90IGEga2V5'],
          { stdio: 'pipe' },
        ),
      ).toThrow(/is not a base64 Ed25519 public key/);
      expect(() => readFileSync(join(dir, 'release-keys.json'))).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
