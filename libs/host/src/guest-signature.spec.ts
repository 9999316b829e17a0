import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { GuestRequestSchema, IntentAuthorizationSchema } from '@lq/proto';
import { intentSigningBytes, requestSigningBytes } from './guest-signature.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

// The bytes signatures cover are a wire contract between control planes and node daemons of
// different releases: these digests were taken from the first implementation and must not move.
describe('signing bytes', () => {
  const intent = create(IntentAuthorizationSchema, {
    keyId: 'f8c8a18b235d7d03',
    intentDigest: 'ab'.repeat(32),
    nodeId: 'node-ü',
    vmId: 'vm-1',
    operation: 'exec.run',
    requestId: '11111111-2222-4333-8444-555555555555',
    expiresAtMs: 1764806400123n,
    signature: new Uint8Array([1, 2, 3]),
  });

  it('should give the same intent bytes as the first implementation', () => {
    const bytes = intentSigningBytes(intent);
    expect(bytes.length).toBe(206);
    expect(sha256(bytes)).toBe('59c39638675ef1c141aedeae85938af01dac8052d237525998d1eec56f5c9388');
  });

  it('should give the same request bytes as the first implementation', () => {
    const ping = create(GuestRequestSchema, {
      requestId: '11111111-2222-4333-8444-555555555555',
      vmId: 'vm-1',
      timeoutMs: 30000,
      actor: 'admin',
      operation: { case: 'ping', value: {} },
    });
    expect(
      sha256(
        requestSigningBytes(ping, {
          nonce: 'nonce-1',
          expiresAtMs: 99n,
          intentSignature: intent.signature,
        }),
      ),
    ).toBe('fd56d219fc02d0dc3eccf0f36b5bf11bec2ec27a73fb6c37f943ffef1f5fc5c9');
    const read = create(GuestRequestSchema, {
      requestId: 'r2',
      vmId: 'vm-2',
      operation: { case: 'fileRead', value: { path: '/etc/hostname' } },
    });
    expect(
      sha256(
        requestSigningBytes(read, {
          nonce: '',
          expiresAtMs: 0n,
          intentSignature: new Uint8Array(),
        }),
      ),
    ).toBe('de01705dc7bde00d72555be0e2f591183c9d51e0df764d4b8601822db62514b0');
  });
});
