// The node daemon's signature check during a key rotation (issue 15 item 3: "rotation with more
// than one public key accepted"): while LQ_CONTROL_PLANE_KEYS names the old and the new key,
// requests signed by either are relayed; once the old key is dropped, its requests are refused.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { GuestErrorCode, GuestRequestSchema, type GuestRequest } from '@lq/proto';
import {
  signIntent,
  signRequest,
  signRequestOnce,
  signingKeyFromPem,
  type SigningKey,
} from '@lq/host';
import { parseNodeDaemonEnv } from '../config/env.schema.js';
import { RequestVerifier } from './request-verifier.js';

const newKey = (): SigningKey =>
  signingKeyFromPem(
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );

function signed(key: SigningKey, now = Date.now()): GuestRequest {
  const intent = signIntent(key, {
    intentDigest: 'digest',
    nodeId: 'node-1',
    vmId: 'vm-1',
    operation: 'execute',
    requestId: '',
    expiresAtMs: BigInt(now + 30_000),
  });
  return signRequest(
    key,
    create(GuestRequestSchema, {
      vmId: 'vm-1',
      operation: { case: 'execute', value: { command: 'true' } },
    }),
    intent,
    10_000,
    now,
  );
}

const verifierTrusting = (...keys: SigningKey[]) =>
  new RequestVerifier(
    parseNodeDaemonEnv({
      LQ_NODE_ID: 'node-1',
      LQ_CONTROL_PLANE_KEYS: keys.map((k) => k.publicKey).join(','),
    }),
  );

describe('RequestVerifier during a signing-key rotation', () => {
  const oldKey = newKey();
  const rotated = newKey();
  const stranger = newKey();

  it('should relay requests signed by either trusted key, and refuse a third', () => {
    const v = verifierTrusting(oldKey, rotated);
    expect(() => v.verify('execute', signed(oldKey))).not.toThrow();
    expect(() => v.verify('execute', signed(rotated))).not.toThrow();
    expect(() => v.verify('execute', signed(stranger))).toThrow(
      expect.objectContaining({ code: GuestErrorCode.SIGNATURE_REFUSED }),
    );
  });

  it('should refuse the old key once it is dropped from LQ_CONTROL_PLANE_KEYS', () => {
    const v = verifierTrusting(rotated);
    expect(() => v.verify('execute', signed(rotated))).not.toThrow();
    expect(() => v.verify('execute', signed(oldKey))).toThrow(/refused/);
  });
});

/** A request signed once (PROTOCOL.md §9 Signed once): its intent unsigned, bound into its signature. */
function signedOnce(key: SigningKey, now = Date.now()): GuestRequest {
  return signRequestOnce(
    key,
    create(GuestRequestSchema, {
      vmId: 'vm-1',
      operation: { case: 'execute', value: { command: 'true' } },
    }),
    {
      intentDigest: 'digest',
      nodeId: 'node-1',
      vmId: 'vm-1',
      operation: 'execute',
      requestId: 'r-1',
      expiresAtMs: BigInt(now + 30_000),
    },
    10_000,
    now,
  );
}

describe('RequestVerifier with requests signed once', () => {
  const key = newKey();
  const refused = expect.objectContaining({ code: GuestErrorCode.SIGNATURE_REFUSED });

  it('should relay a request whose one signature covers its intent, once', () => {
    const v = verifierTrusting(key);
    const req = signedOnce(key);
    expect(req.authorization?.intent?.signature).toHaveLength(0);
    expect(() => v.verify('execute', req)).not.toThrow();
    expect(() => v.verify('execute', req)).toThrow(/seen before/);
  });

  it.each([
    ['the intent digest', (r: GuestRequest) => (r.authorization!.intent!.intentDigest = 'other')],
    ['the intent request id', (r: GuestRequest) => (r.authorization!.intent!.requestId = 'r-2')],
    [
      'the intent expiry',
      (r: GuestRequest) => (r.authorization!.intent!.expiresAtMs += 3_600_000n),
    ],
    ['the intent node', (r: GuestRequest) => (r.authorization!.intent!.nodeId = 'node-1 ')],
    ['the request id', (r: GuestRequest) => (r.requestId = 'r-9')],
    [
      'the command',
      (r: GuestRequest) =>
        (r.operation = {
          case: 'execute',
          value: { ...r.operation.value!, command: 'id' },
        } as GuestRequest['operation']),
    ],
    ['the request expiry', (r: GuestRequest) => (r.authorization!.expiresAtMs += 60_000n)],
  ])('should refuse it when %s is altered', (_what, alter) => {
    const req = signedOnce(key);
    alter(req);
    expect(() => verifierTrusting(key).verify('execute', req)).toThrow(refused);
  });

  it('should refuse a request whose intent signature was stripped (the forms do not stand in for each other)', () => {
    const req = signed(key);
    req.authorization!.intent!.signature = new Uint8Array(0);
    expect(() => verifierTrusting(key).verify('execute', req)).toThrow(
      /request signature does not verify/,
    );
  });

  it('should refuse one signed once by a key it does not trust', () => {
    expect(() => verifierTrusting(key).verify('execute', signedOnce(newKey()))).toThrow(refused);
  });
});
