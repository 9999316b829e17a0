// The test stacks' guest-request signing key (a test key, not a secret): control planes sign
// with it, node daemons trust it, and tests that talk to a node daemon directly sign with it
// as the control plane would (PROTOCOL.md §9 Signed requests).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import {
  FileReadRequestSchema,
  FileWriteRequestSchema,
  type GuestOperation,
  type GuestRequest,
} from '@lq/proto';
import {
  callGuest,
  requestGuest,
  signIntent,
  signRequest,
  signRequestOnce,
  signingKeyFromPem,
  type FileChunkPort,
  type NatsRequester,
  type SigningKey,
} from '@lq/host';

export const TEST_SIGNING_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIBNZm8TYcKzsaJFmLCyM222dcVBimda4m3oZCBf1Ncvh
-----END PRIVATE KEY-----
`;

export const TEST_SIGNING_KEY: SigningKey = signingKeyFromPem(TEST_SIGNING_KEY_PEM);

/** What node daemons are given to trust it (LQ_CONTROL_PLANE_KEYS). */
export const TEST_CONTROL_PLANE_KEYS = TEST_SIGNING_KEY.publicKey;

let keyFile: string | undefined;

/** A file holding the test key, for LQ_SIGNING_KEY_FILE. */
export function testSigningKeyFile(): string {
  if (!keyFile) {
    keyFile = join(mkdtempSync(join(tmpdir(), 'lq-signing-')), 'signing.key');
    writeFileSync(keyFile, TEST_SIGNING_KEY_PEM, { mode: 0o600 });
  }
  return keyFile;
}

/**
 * A signer for requests sent straight to a node daemon, as the control plane would sign them
 * under an intent for `nodeId`, `vmId` and `operation` (the intent digest is made up): the
 * intent signed on its own, or with `once` one signature over intent and request, as the
 * synchronous path signs (PROTOCOL.md §9 Signed once).
 */
export function testSigner(
  nodeId: string,
  vmId: string,
  operation: GuestOperation,
  options: { key?: SigningKey; ttlMs?: number; intentTtlMs?: number; once?: boolean } = {},
): (request: GuestRequest) => GuestRequest {
  const key = options.key ?? TEST_SIGNING_KEY;
  const fields = {
    intentDigest: randomBytes(32).toString('hex'),
    nodeId,
    vmId,
    operation,
    requestId: '',
    expiresAtMs: BigInt(Date.now() + (options.intentTtlMs ?? 600_000)),
  };
  const ttlMs = options.ttlMs ?? 30_000;
  if (options.once) {
    return (request) => signRequestOnce(key, request, fields, ttlMs);
  }
  const intent = signIntent(key, fields);
  return (request) => signRequest(key, request, intent, ttlMs);
}

type Init = Parameters<typeof requestGuest>[3];

/** requestGuest, signed as the control plane would sign it. */
export function signedRequestGuest(
  nc: NatsRequester,
  nodeId: string,
  op: GuestOperation,
  request: Init,
  slackMs?: number,
  options: { once?: boolean } = {},
): ReturnType<typeof requestGuest> {
  return requestGuest(
    nc,
    nodeId,
    op,
    request,
    slackMs,
    testSigner(nodeId, request.vmId ?? '', op, options),
  );
}

/** callGuest, signed as the control plane would sign it. */
export function signedCallGuest<C extends Parameters<typeof callGuest>[4]>(
  nc: NatsRequester,
  nodeId: string,
  op: GuestOperation,
  request: Init,
  expect: C,
  slackMs?: number,
): ReturnType<typeof callGuest<C>> {
  return callGuest(
    nc,
    nodeId,
    op,
    request,
    expect,
    slackMs,
    testSigner(nodeId, request.vmId ?? '', op),
  );
}

/** File chunks to one VM through its node daemon, each request signed. */
export function testFilePort(
  nc: NatsRequester,
  nodeId: string,
  vmId: string,
  chunkMaxBytes: number,
  actor = '',
): FileChunkPort {
  return {
    chunkMaxBytes,
    read: (request, timeoutMs = 30_000) =>
      signedCallGuest(
        nc,
        nodeId,
        'file.read',
        {
          vmId,
          actor,
          timeoutMs,
          operation: { case: 'fileRead', value: create(FileReadRequestSchema, request) },
        },
        'fileRead',
      ),
    write: (request, timeoutMs = 30_000) =>
      signedCallGuest(
        nc,
        nodeId,
        'file.write',
        {
          vmId,
          actor,
          timeoutMs,
          operation: { case: 'fileWrite', value: create(FileWriteRequestSchema, request) },
        },
        'fileWrite',
      ),
  };
}
