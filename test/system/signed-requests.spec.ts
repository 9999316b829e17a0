// Signed guest requests (issue 15 item 3): a node daemon relays nothing the control plane did
// not sign for that node, VM and operation, in time, once. Anyone who can publish on NATS used
// to run root commands on every VM with no audit row. Real nats-server, PostgreSQL, control
// plane, node daemon and agents; a refused command is proved by a marker file that must not
// exist.
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import {
  GuestErrorCode,
  GuestRequestSchema,
  GuestResponseSchema,
  subjects,
  type GuestRequest,
  type GuestResponse,
} from '@lq/proto';
import { boundSigningBytes, signIntent, signRequest, signingKeyFromPem } from '@lq/host';
import { intentDigest } from '@lq/audit';
import { startOneNodeStack, type OneNodeStack } from '../support/one-node-stack.js';
import { adminFetch } from '../support/control-plane-process.js';
import { TEST_SIGNING_KEY, testSigner } from '../support/signing.js';

describe('signed guest requests', () => {
  let stack: OneNodeStack;
  let nc: NatsConnection;
  let markers: string;

  beforeAll(async () => {
    stack = await startOneNodeStack({ name: 'signed', vms: 2 });
    nc = await connect({ servers: stack.nats.url });
    markers = mkdtempSync(join(tmpdir(), 'lq-signed-'));
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    await stack?.stop();
    rmSync(markers, { recursive: true, force: true });
  });

  /** An execute of `touch <marker>` for `vmId`, as anyone on NATS could build it. */
  function touch(vmId: string, marker: string): GuestRequest {
    return create(GuestRequestSchema, {
      vmId,
      timeoutMs: 10_000,
      operation: { case: 'execute', value: { command: `touch ${marker}` } },
    });
  }

  async function send(subject: string, request: GuestRequest | Uint8Array): Promise<GuestResponse> {
    const bytes = request instanceof Uint8Array ? request : toBinary(GuestRequestSchema, request);
    const reply = await nc.request(subject, bytes, { timeout: 15_000 });
    return fromBinary(GuestResponseSchema, reply.data);
  }

  const refusal = (r: GuestResponse) =>
    r.result.case === 'error' ? { code: r.result.value.code, message: r.result.value.message } : r;

  const EXECUTE = () => subjects.guest('node-1', 'execute');

  it('should refuse unsigned, foreign-key, altered and expired requests, and run none of them', async () => {
    const foreign = signingKeyFromPem(
      generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    );
    const cases: Array<[string, (m: string) => GuestRequest, RegExp]> = [
      ['unsigned', (m) => touch('vm-1', m), /not signed/],
      [
        'a key the node does not trust',
        (m) => testSigner('node-1', 'vm-1', 'execute', { key: foreign })(touch('vm-1', m)),
        /does not trust/,
      ],
      [
        'altered after signing',
        (m) => {
          const signed = testSigner('node-1', 'vm-1', 'execute')(touch('vm-1', `${m}-other`));
          if (signed.operation.case === 'execute') {
            signed.operation.value.command = `touch ${m}`;
          }
          return signed;
        },
        /does not verify/,
      ],
      [
        'expired',
        (m) => testSigner('node-1', 'vm-1', 'execute', { ttlMs: -60_000 })(touch('vm-1', m)),
        /expired/,
      ],
      [
        'an expired intent',
        (m) => testSigner('node-1', 'vm-1', 'execute', { intentTtlMs: -60_000 })(touch('vm-1', m)),
        /intent has expired/,
      ],
    ];
    for (const [name, build, why] of cases) {
      const marker = join(markers, name.replace(/\W+/g, '-'));
      const r = refusal(await send(EXECUTE(), build(marker)));
      expect({ name, r }).toEqual({
        name,
        r: { code: GuestErrorCode.SIGNATURE_REFUSED, message: expect.stringMatching(why) },
      });
      expect({ name, ran: existsSync(marker) }).toEqual({ name, ran: false });
    }
  });

  it('should refuse a request signed for another VM, operation or node', async () => {
    const cases: Array<[string, () => GuestRequest, string, RegExp]> = [
      [
        'another VM',
        () => testSigner('node-1', 'vm-2', 'execute')(touch('vm-1', join(markers, 'vm'))),
        EXECUTE(),
        /signature does not verify|signed for VM/,
      ],
      [
        'another operation',
        () => testSigner('node-1', 'vm-1', 'file.read')(touch('vm-1', join(markers, 'op'))),
        EXECUTE(),
        /signed for "file.read"/,
      ],
      [
        // A composite's companions (network.get, network.confirm) are all its intent carries.
        'an operation that is not a companion of the intent',
        () =>
          testSigner('node-1', 'vm-1', 'network.configure')(touch('vm-1', join(markers, 'comp'))),
        EXECUTE(),
        /signed for "network.configure"/,
      ],
      [
        'another node',
        () => testSigner('node-2', 'vm-1', 'execute')(touch('vm-1', join(markers, 'node'))),
        EXECUTE(),
        /signed for node "node-2"/,
      ],
    ];
    for (const [name, build, subject, why] of cases) {
      const r = refusal(await send(subject, build()));
      expect({ name, r }).toEqual({
        name,
        r: { code: GuestErrorCode.SIGNATURE_REFUSED, message: expect.stringMatching(why) },
      });
    }
    expect(existsSync(join(markers, 'vm'))).toBe(false);
    expect(existsSync(join(markers, 'op'))).toBe(false);
    expect(existsSync(join(markers, 'node'))).toBe(false);
    expect(existsSync(join(markers, 'comp'))).toBe(false);
  });

  it('should run a signed request once and refuse its replay', async () => {
    const marker = join(markers, 'replayed');
    const bytes = toBinary(
      GuestRequestSchema,
      testSigner('node-1', 'vm-1', 'execute')(touch('vm-1', marker)),
    );
    const first = await send(EXECUTE(), bytes);
    expect(first.result.case).toBe('execute');
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
    const again = refusal(await send(EXECUTE(), bytes));
    expect(again).toEqual({
      code: GuestErrorCode.SIGNATURE_REFUSED,
      message: expect.stringMatching(/seen before/),
    });
    expect(existsSync(marker)).toBe(false);
  });

  it('should run the same operation through the API, its intent holding a signature auditors can check', async () => {
    const marker = join(markers, 'through-the-api');
    const res = await adminFetch(`${stack.cp.url}/api/vms/vm-1/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ command: `touch ${marker}` }),
    });
    expect(res.status).toBe(200);
    expect(existsSync(marker)).toBe(true);

    const keys = (await (await fetch(`${stack.cp.url}/api/signing-keys`)).json()) as {
      keys: Array<{ key_id: string; public_key: string }>;
    };
    expect(keys.keys).toEqual([
      expect.objectContaining({
        key_id: TEST_SIGNING_KEY.keyId,
        public_key: TEST_SIGNING_KEY.publicKey,
      }),
    ]);
    const db = new pg.Client({ connectionString: stack.db.url });
    await db.connect();
    const row = (
      await db.query<Record<string, unknown>>(
        `SELECT * FROM audit_events WHERE kind = 'intent' AND operation = 'execute'
         AND params->>'command' = $1`,
        [`touch ${marker}`],
      )
    ).rows[0]!;
    await db.end();
    const auth = (row.params as { authorization: Record<string, unknown> }).authorization;
    expect(auth).toMatchObject({ key_id: TEST_SIGNING_KEY.keyId, signature: expect.any(String) });
    // An auditor's check: the digest of the stored row, and the signature over it and the
    // node, VM and operation, with the control plane's published public key.
    const digest = intentDigest({
      request_id: row.request_id as string,
      actor: row.actor as string,
      auth_method: row.auth_method as string,
      source_ip: row.source_ip as string,
      vm_id: row.vm_id as string,
      node_id: row.node_id as string,
      project_id: row.project_id as string,
      operation: row.operation as string,
      params: row.params,
    });
    expect(auth.intent_digest).toBe(digest);
    const publicKey = createPublicKey({
      key: Buffer.concat([
        Buffer.from('302a300506032b6570032100', 'hex'),
        Buffer.from(keys.keys[0]!.public_key, 'base64'),
      ]),
      format: 'der',
      type: 'spki',
    });
    // A synchronous call is signed once (PROTOCOL.md §9 Signed once): the row keeps the one
    // signature of the request it sent, over the intent's fields and the request's.
    expect(auth).toMatchObject({ form: 'request', nonce: expect.any(String) });
    const intent = {
      keyId: auth.key_id as string,
      intentDigest: digest,
      nodeId: 'node-1',
      vmId: 'vm-1',
      operation: 'execute',
      requestId: row.request_id as string,
      expiresAtMs: BigInt(auth.expires_at_ms as number),
    };
    const bytes = (i: typeof intent) =>
      boundSigningBytes(
        { requestId: auth.request_id as string, vmId: row.vm_id as string },
        {
          intent: i,
          nonce: auth.nonce as string,
          expiresAtMs: BigInt(auth.request_expires_at_ms as number),
        },
        Buffer.from(auth.operation_sha256 as string, 'hex'),
      );
    const signature = Buffer.from(auth.signature as string, 'base64');
    expect(verify(null, bytes(intent), publicKey, signature)).toBe(true);
    // And a forged intent (another VM, another digest) does not verify with it.
    expect(verify(null, bytes({ ...intent, vmId: 'vm-2' }), publicKey, signature)).toBe(false);
    expect(
      verify(null, bytes({ ...intent, intentDigest: '0'.repeat(64) }), publicKey, signature),
    ).toBe(false);
  });

  it('should sign with the same primitives the node checks (sanity of the helpers)', () => {
    const intent = signIntent(TEST_SIGNING_KEY, {
      intentDigest: 'x',
      nodeId: 'n',
      vmId: 'v',
      operation: 'ping',
      requestId: '',
      expiresAtMs: 1n,
    });
    const req = signRequest(
      TEST_SIGNING_KEY,
      create(GuestRequestSchema, { vmId: 'v', operation: { case: 'ping', value: {} } }),
      intent,
      1000,
    );
    const decoded = fromBinary(GuestRequestSchema, toBinary(GuestRequestSchema, req));
    expect(decoded.authorization?.intent?.signature).toEqual(intent.signature);
  });
});
