// Signed guest requests (PROTOCOL.md §9, Signed requests). The control plane signs, with its
// Ed25519 key, an IntentAuthorization when it writes an operation's audit intent (node, VM,
// operation, the intent's content digest, an expiry), and every GuestRequest it sends under
// that intent (the intent's signature, the request id, a fresh nonce, an expiry of seconds and
// the sha256 of the operation's bytes). A node daemon verifies both before relaying, so NATS
// access alone runs nothing, and a request cannot be replayed, redirected or altered. A request
// sent as its operation's only one is signed once instead (since 0.7.0): its intent goes along
// unsigned, its fields bound into the request's signature.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { create, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import {
  GuestRequestAuthorizationSchema,
  GuestRequestSchema,
  IntentAuthorizationSchema,
  type GuestRequest,
  type GuestRequestAuthorization,
  type IntentAuthorization,
} from '@lq/proto';

const INTENT_DOMAIN = 'lq-intent-authorization/v1';
const REQUEST_DOMAIN = 'lq-guest-request/v1';
const BOUND_DOMAIN = 'lq-guest-request-bound/v1';
// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key's 32 bytes follow it.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// Nonces are cut from a pool of random bytes refilled 4 KiB at a time: one CSPRNG call per 256
// requests rather than one each (randomUUID pools the same way).
const NONCE_BYTES = 16;
let noncePool = Buffer.alloc(0);
let noncePoolAt = 0;

/** A fresh random nonce (16 bytes, base64url). */
function newNonce(): string {
  if (noncePoolAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(256 * NONCE_BYTES);
    noncePoolAt = 0;
  }
  noncePoolAt += NONCE_BYTES;
  return noncePool.toString('base64url', noncePoolAt - NONCE_BYTES, noncePoolAt);
}

/** Length-prefixed fields: no two different field lists give the same bytes. */
function fields(domain: string, values: Array<string | Uint8Array | bigint>): Buffer {
  // Sized first and written into one buffer: this runs twice per guest request.
  const all = [domain, ...values].map((v) => (typeof v === 'bigint' ? v.toString(10) : v));
  let size = 0;
  for (const v of all) {
    size += 4 + (typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length);
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const v of all) {
    let len: number;
    if (typeof v === 'string') {
      len = out.write(v, at + 4, 'utf8');
    } else {
      out.set(v, at + 4);
      len = v.length;
    }
    out.writeUInt32BE(len, at);
    at += 4 + len;
  }
  return out;
}

/** The bytes an IntentAuthorization's signature covers. */
export function intentSigningBytes(a: IntentAuthorization): Buffer {
  return fields(INTENT_DOMAIN, [
    a.keyId,
    a.intentDigest,
    a.nodeId,
    a.vmId,
    a.operation,
    a.requestId,
    a.expiresAtMs,
  ]);
}

// The message schema of each GuestRequest operation case, by case name (looked up per request).
const operationSchemas = new Map<string, DescMessage>(
  GuestRequestSchema.fields.flatMap((f) =>
    (f as { message?: DescMessage }).message
      ? [[f.localName, (f as { message: DescMessage }).message] as const]
      : [],
  ),
);

/**
 * sha256 of a request's operation: the agent request it carries, serialised alone (protobuf-es
 * writes the same message the same way, unknown fields included).
 */
export function operationDigest(request: GuestRequest): Buffer {
  const op = request.operation;
  if (op.case === undefined) {
    return createHash('sha256').digest();
  }
  const schema = operationSchemas.get(op.case);
  if (!schema) {
    throw new Error(`GuestRequest.${op.case} is not a message field`);
  }
  const bytes = toBinary(schema, op.value as MessageShape<DescMessage>);
  return createHash('sha256').update(bytes).digest();
}

/** The bytes a GuestRequestAuthorization's signature covers. */
export function requestSigningBytes(
  request: GuestRequest,
  auth: Pick<GuestRequestAuthorization, 'nonce' | 'expiresAtMs'> & { intentSignature: Uint8Array },
): Buffer {
  return fields(REQUEST_DOMAIN, [
    auth.intentSignature,
    request.requestId,
    request.vmId,
    auth.nonce,
    auth.expiresAtMs,
    operationDigest(request),
  ]);
}

/**
 * The bytes a request signed once covers (PROTOCOL.md §9 Signed once): its intent's fields, left
 * unsigned, bound into the request's own signature.
 */
export function boundSigningBytes(
  request: Pick<GuestRequest, 'requestId' | 'vmId'>,
  auth: Pick<GuestRequestAuthorization, 'nonce' | 'expiresAtMs'> & {
    intent: Omit<IntentAuthorization, '$typeName' | 'signature'>;
  },
  operationSha256: Uint8Array,
): Buffer {
  const i = auth.intent;
  return fields(BOUND_DOMAIN, [
    i.keyId,
    i.intentDigest,
    i.nodeId,
    i.vmId,
    i.operation,
    i.requestId,
    i.expiresAtMs,
    request.requestId,
    request.vmId,
    auth.nonce,
    auth.expiresAtMs,
    operationSha256,
  ]);
}

/** A control plane's signing key: the private key, its raw public key and its id. */
export interface SigningKey {
  privateKey: KeyObject;
  /** The raw 32-byte Ed25519 public key, base64 (what node daemons are configured with). */
  publicKey: string;
  keyId: string;
}

/** The id of a raw public key: the first 16 hex digits of its sha256. */
export function keyIdOf(rawPublicKey: Uint8Array): string {
  return createHash('sha256').update(rawPublicKey).digest('hex').slice(0, 16);
}

/** A signing key from a PEM (PKCS#8) Ed25519 private key; throws naming the problem. */
export function signingKeyFromPem(pem: string): SigningKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`the key is ${privateKey.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`);
  }
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const raw = spki.subarray(SPKI_PREFIX.length);
  return { privateKey, publicKey: raw.toString('base64'), keyId: keyIdOf(raw) };
}

/** A public key from its raw base64 form (node daemons' LQ_CONTROL_PLANE_KEYS). */
export function publicKeyFromBase64(text: string): { key: KeyObject; keyId: string } {
  const raw = Buffer.from(text.trim(), 'base64');
  if (raw.length !== 32) {
    throw new Error(`an Ed25519 public key is 32 bytes; ${JSON.stringify(text)} has ${raw.length}`);
  }
  const key = createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  });
  return { key, keyId: keyIdOf(raw) };
}

/** Signs what an intent allows (the control plane, when it writes the intent). */
export function signIntent(
  key: SigningKey,
  intent: Omit<IntentAuthorization, '$typeName' | 'signature' | 'keyId'>,
): IntentAuthorization {
  const unsigned = create(IntentAuthorizationSchema, { ...intent, keyId: key.keyId });
  unsigned.signature = sign(null, intentSigningBytes(unsigned), key.privateKey);
  return unsigned;
}

/** Signs one request under an intent; returns the request with its authorization set. */
export function signRequest(
  key: SigningKey,
  request: GuestRequest,
  intent: IntentAuthorization,
  ttlMs: number,
  now = Date.now(),
): GuestRequest {
  const auth = create(GuestRequestAuthorizationSchema, {
    intent,
    nonce: newNonce(),
    expiresAtMs: BigInt(now + ttlMs),
  });
  auth.signature = sign(
    null,
    requestSigningBytes(request, { ...auth, intentSignature: intent.signature }),
    key.privateKey,
  );
  request.authorization = auth;
  return request;
}

/**
 * Signs one request with one signature that also covers its intent (PROTOCOL.md §9 Signed
 * once): the intent goes along unsigned. Returns the request with its authorization set.
 */
export function signRequestOnce(
  key: SigningKey,
  request: GuestRequest,
  intent: Omit<IntentAuthorization, '$typeName' | 'signature' | 'keyId'>,
  ttlMs: number,
  now = Date.now(),
  digest = operationDigest(request),
): GuestRequest {
  const auth = create(GuestRequestAuthorizationSchema, {
    intent: create(IntentAuthorizationSchema, { ...intent, keyId: key.keyId }),
    nonce: newNonce(),
    expiresAtMs: BigInt(now + ttlMs),
  });
  auth.signature = sign(
    null,
    boundSigningBytes(request, { ...auth, intent: auth.intent! }, digest),
    key.privateKey,
  );
  request.authorization = auth;
  return request;
}

/** Why a request's signatures do not verify with `keys` (by key id), or undefined. */
export function signatureProblem(
  request: GuestRequest,
  keys: ReadonlyMap<string, KeyObject>,
): string | undefined {
  const auth = request.authorization;
  const intent = auth?.intent;
  if (!auth || !intent) {
    return 'the request is not signed';
  }
  const key = keys.get(intent.keyId);
  if (!key) {
    return `the request is signed with key ${JSON.stringify(intent.keyId)}, which this node does not trust`;
  }
  if (intent.signature.length === 0) {
    // Signed once: the request's signature covers the intent's fields.
    const bytes = boundSigningBytes(request, { ...auth, intent }, operationDigest(request));
    return verify(null, bytes, key, auth.signature)
      ? undefined
      : 'the request signature does not verify (altered, or signed for other bytes)';
  }
  if (!verify(null, intentSigningBytes(intent), key, intent.signature)) {
    return 'the intent authorization does not verify';
  }
  const bytes = requestSigningBytes(request, { ...auth, intentSignature: intent.signature });
  if (!verify(null, bytes, key, auth.signature)) {
    return 'the request signature does not verify (altered, or signed for other bytes)';
  }
  return undefined;
}
