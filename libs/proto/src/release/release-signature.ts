// Agent releases are signed (PROTOCOL.md §10): each executable by an Ed25519 release key over a
// statement naming its version, build target, sha256 and size, so the agent verifies exactly
// the file it received for its own platform. The agent verifies; the release tooling and the
// control plane sign and check. Node's crypto only: the agent imports nothing else.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/** What a release signature covers: one executable of one release. */
export interface ReleaseArtifact {
  version: string;
  target: string;
  /** Lower-case hex. */
  sha256: string;
  size: number;
}

const RELEASE_DOMAIN = 'limiquantix-agent-release/v1';
const KEY_LIST_DOMAIN = 'limiquantix-agent-release-keys/v1';
// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows.
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** The bytes a release signature signs. */
export function releaseStatement(a: ReleaseArtifact): Buffer {
  return Buffer.from(
    `${RELEASE_DOMAIN}\n${a.version}\n${a.target}\n${a.sha256.toLowerCase()}\n${a.size}\n`,
    'utf8',
  );
}

/** The bytes a key-list signature signs: the domain line, then the list's bytes as sent. */
export function keyListStatement(keyList: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${KEY_LIST_DOMAIN}\n`, 'utf8'), keyList]);
}

/** A base64 raw Ed25519 public key as a KeyObject; throws naming the key when it is not one. */
export function releasePublicKey(base64: string): KeyObject {
  const raw = Buffer.from(base64, 'base64');
  if (raw.length !== 32) {
    throw new Error(`release key ${base64} is not a base64 Ed25519 public key of 32 bytes`);
  }
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

/** The base64 raw public key of an Ed25519 key (public or private). */
export function rawPublicKey(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub
    .export({ format: 'der', type: 'spki' })
    .subarray(SPKI_ED25519.length)
    .toString('base64');
}

/** The release key, from PEM (PKCS#8) text. */
export function releasePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`a release key must be Ed25519 (got ${key.asymmetricKeyType ?? 'unknown'})`);
  }
  return key;
}

export function signRelease(key: KeyObject, a: ReleaseArtifact): Buffer {
  return sign(null, releaseStatement(a), key);
}

export function signKeyList(key: KeyObject, keyList: Uint8Array): Buffer {
  return sign(null, keyListStatement(keyList), key);
}

/** The first of `keys` (base64) whose signature over `message` verifies, or undefined. */
export function verifiedBy(
  keys: readonly string[],
  message: Uint8Array,
  signature: Uint8Array,
): string | undefined {
  if (signature.length !== 64) {
    return undefined;
  }
  return keys.find((k) => {
    try {
      return verify(null, message, releasePublicKey(k), signature);
    } catch {
      return false;
    }
  });
}

/** A signed key list (PROTOCOL.md §10) as parsed; throws naming what is wrong. */
export interface ReleaseKeyList {
  keys: string[];
  issued_at: string;
}

export function parseKeyList(bytes: Uint8Array): ReleaseKeyList {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new Error('key_list is not JSON');
  }
  const o = parsed as Partial<ReleaseKeyList>;
  if (
    !Array.isArray(o.keys) ||
    o.keys.length === 0 ||
    o.keys.some((k) => typeof k !== 'string' || Buffer.from(k, 'base64').length !== 32) ||
    typeof o.issued_at !== 'string' ||
    Number.isNaN(Date.parse(o.issued_at))
  ) {
    throw new Error(
      'key_list must be {"keys": [base64 Ed25519 public keys], "issued_at": ISO time}',
    );
  }
  return { keys: o.keys, issued_at: o.issued_at };
}
