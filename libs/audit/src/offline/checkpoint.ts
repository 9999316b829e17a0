import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/**
 * A signed checkpoint of the audit chain's head: "row `seq` of the chain had hash `hash` at
 * `at`", signed with the control plane's Ed25519 key. Kept outside the audit table (a JetStream
 * stream that cannot be purged, and an append-only table), so rows deleted from the end, or a
 * table rewritten with a fresh chain, no longer reach a signed head.
 */
export interface AuditCheckpoint {
  seq: number;
  /** sha256 of row `seq`, hex. */
  hash: string;
  /** When it was signed (ISO 8601, UTC). */
  at: string;
  /** The signing key's id (first 16 hex digits of sha256 of the raw public key). */
  key_id: string;
  /** Ed25519 signature over checkpointSigningBytes(), base64. */
  signature: string;
}

/** Domain separation: a checkpoint signature cannot be mistaken for a guest-request signature. */
export const CHECKPOINT_CONTEXT = 'lq-audit-checkpoint/v1';

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{16}$/;
// The DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The bytes a checkpoint signature covers: context, seq, hash and time, one per line. */
export function checkpointSigningBytes(c: Pick<AuditCheckpoint, 'seq' | 'hash' | 'at'>): Buffer {
  return Buffer.from(`${CHECKPOINT_CONTEXT}\n${c.seq}\n${c.hash}\n${c.at}`, 'utf8');
}

/** Signs the head `seq`/`hash` with an Ed25519 private key. */
export function signCheckpoint(
  key: { privateKey: KeyObject; keyId: string },
  head: { seq: number; hash: string },
  at = new Date(),
): AuditCheckpoint {
  const unsigned = { seq: head.seq, hash: head.hash, at: at.toISOString() };
  return {
    ...unsigned,
    key_id: key.keyId,
    signature: sign(null, checkpointSigningBytes(unsigned), key.privateKey).toString('base64'),
  };
}

/** An Ed25519 public key from its raw base64 form (GET /api/audit/public-key's public_key). */
export function checkpointPublicKey(base64: string): KeyObject {
  const raw = Buffer.from(base64.trim(), 'base64');
  if (raw.length !== 32) {
    throw new Error(`an Ed25519 public key is 32 bytes of base64; this one has ${raw.length}`);
  }
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** The id of a raw base64 public key: the first 16 hex digits of its sha256 (as @lq/host's). */
export function checkpointKeyId(base64: string): string {
  return createHash('sha256')
    .update(Buffer.from(base64.trim(), 'base64'))
    .digest('hex')
    .slice(0, 16);
}

/** A checkpoint as it came off the wire or a file: checked field by field. */
export function parseCheckpoint(value: unknown): AuditCheckpoint {
  const v = (value ?? {}) as Record<string, unknown>;
  const seq = v.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    throw new Error('checkpoint seq is not a positive whole number');
  }
  if (typeof v.hash !== 'string' || !HEX64.test(v.hash)) {
    throw new Error('checkpoint hash is not 64 hex digits');
  }
  if (typeof v.at !== 'string' || Number.isNaN(Date.parse(v.at))) {
    throw new Error('checkpoint at is not a time');
  }
  if (typeof v.key_id !== 'string' || !KEY_ID.test(v.key_id)) {
    throw new Error('checkpoint key_id is not 16 hex digits');
  }
  if (typeof v.signature !== 'string' || v.signature.length > 200) {
    throw new Error('checkpoint signature is not base64');
  }
  return { seq, hash: v.hash, at: v.at, key_id: v.key_id, signature: v.signature };
}

/**
 * Why a checkpoint must not be trusted: 'unknown key' (signed with a key not given: neither
 * trusted nor proof of tampering, e.g. a key since rotated away), or a bad signature (tampering);
 * undefined when it checks out.
 */
export function checkpointProblem(
  c: AuditCheckpoint,
  keys: ReadonlyMap<string, KeyObject>,
): 'unknown key' | 'bad signature' | undefined {
  const key = keys.get(c.key_id);
  if (!key) {
    return 'unknown key';
  }
  try {
    return verify(null, checkpointSigningBytes(c), key, Buffer.from(c.signature, 'base64'))
      ? undefined
      : 'bad signature';
  } catch {
    return 'bad signature';
  }
}
