// The node daemon's signature check during a key rotation (issue 15 item 3: "rotation with more
// than one public key accepted"): while LQ_CONTROL_PLANE_KEYS names the old and the new key,
// requests signed by either are relayed; once the old key is dropped, its requests are refused.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { GuestErrorCode, GuestRequestSchema, type GuestRequest } from '@lq/proto';
import { signIntent, signRequest, signingKeyFromPem, type SigningKey } from '@lq/host';
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
