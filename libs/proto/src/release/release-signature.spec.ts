import { generateKeyPairSync } from 'node:crypto';
import {
  keyListStatement,
  parseKeyList,
  rawPublicKey,
  releaseStatement,
  signKeyList,
  signRelease,
  verifiedBy,
} from './release-signature.js';

const artifact = { version: '0.2.0', target: 'linux-amd64', sha256: 'ab'.repeat(32), size: 42 };

describe('release signatures', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519').privateKey;
  const pub = rawPublicKey(privateKey);

  it('should verify a release signed by a trusted key', () => {
    const sig = signRelease(privateKey, artifact);
    expect(verifiedBy([rawPublicKey(other), pub], releaseStatement(artifact), sig)).toBe(pub);
  });

  it('should refuse a signature when any signed field differs', () => {
    const sig = signRelease(privateKey, artifact);
    for (const changed of [
      { ...artifact, version: '0.2.1' },
      { ...artifact, target: 'linux-arm64' },
      { ...artifact, sha256: 'cd'.repeat(32) },
      { ...artifact, size: 43 },
    ]) {
      expect(verifiedBy([pub], releaseStatement(changed), sig)).toBeUndefined();
    }
  });

  it('should refuse a signature by an untrusted key, and garbage', () => {
    expect(
      verifiedBy([pub], releaseStatement(artifact), signRelease(other, artifact)),
    ).toBeUndefined();
    expect(verifiedBy([pub], releaseStatement(artifact), Buffer.alloc(64))).toBeUndefined();
    expect(verifiedBy([pub], releaseStatement(artifact), Buffer.alloc(3))).toBeUndefined();
  });

  it('should sign a key list under its own domain, not as a release', () => {
    const list = Buffer.from(JSON.stringify({ keys: [pub], issued_at: '2026-12-01T00:00:00Z' }));
    const sig = signKeyList(privateKey, list);
    expect(verifiedBy([pub], keyListStatement(list), sig)).toBe(pub);
    expect(verifiedBy([pub], list, sig)).toBeUndefined();
    expect(parseKeyList(list).keys).toEqual([pub]);
    expect(() => parseKeyList(Buffer.from('{"keys": ["x"]}'))).toThrow(/key_list must be/);
  });
});
