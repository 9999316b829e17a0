import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { type GuestRequest, type IntentAuthorization } from '@lq/proto';
import {
  operationDigest,
  signIntent,
  signRequest,
  signRequestOnce,
  signingKeyFromPem,
  type SigningKey,
} from '@lq/host';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';

const SETTING = 'guest_request_signing_key';

/** What an intent authorizes: one node, VM and operation, for a while. */
export interface IntentScope {
  intentDigest: string;
  nodeId: string;
  vmId: string;
  operation: string;
  requestId: string;
  ttlMs: number;
}

/** Signs the requests of an intent that is not signed on its own (PROTOCOL.md §9 Signed once). */
export interface OnceSigner {
  /** Signs one request (a fresh nonce and expiry, one signature over it and the intent). */
  readonly sign: (request: GuestRequest) => GuestRequest;
  /** A signed request's authorization as the intent row keeps it (params.authorization). */
  readonly stored: (request: GuestRequest) => Record<string, unknown>;
}

/**
 * The control plane's Ed25519 key and the signatures node daemons check before they relay
 * anything (PROTOCOL.md §9 Signed requests): an intent's authorization when its audit row is
 * written, and each request sent under it. The key comes from LQ_SIGNING_KEY_FILE (where the
 * deployment keeps secrets); without it, one is generated at first start and shared by the
 * replicas through the database, and start-up says so.
 */
@Injectable()
export class RequestSigner implements OnModuleInit {
  private readonly log = new Logger('signing');
  private signingKey: SigningKey | undefined;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(DataSource) private readonly ds: DataSource,
  ) {}

  async onModuleInit(): Promise<void> {
    const file = this.config.signing.keyFile;
    if (file) {
      this.signingKey = signingKeyFromPem(readFileSync(file, 'utf8'));
    } else {
      const generated = generateKeyPairSync('ed25519')
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString();
      await this.ds.query(
        'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
        [SETTING, generated],
      );
      const rows = await this.ds.query<Array<{ value: string }>>(
        'SELECT value FROM settings WHERE key = $1',
        [SETTING],
      );
      this.signingKey = signingKeyFromPem(rows[0]!.value);
      this.log.warn(
        'LQ_SIGNING_KEY_FILE is not set: guest requests are signed with a key kept in the database; give the control plane a key file where your deployment keeps secrets',
      );
    }
    this.log.log(
      `guest requests are signed with key ${this.key.keyId}; node daemons trust it with LQ_CONTROL_PLANE_KEYS=${this.key.publicKey}`,
    );
  }

  private get key(): SigningKey {
    if (!this.signingKey) {
      throw new Error('the signing key is not loaded yet');
    }
    return this.signingKey;
  }

  /**
   * The key audit checkpoints are signed with: the same key (SECURITY.md: one key to keep,
   * one public key for node daemons and auditors alike).
   */
  get checkpointKey(): SigningKey {
    return this.key;
  }

  /** The public keys node daemons should trust (GET /api/signing-keys). */
  publicKeys(): Array<{ key_id: string; public_key: string; algorithm: 'Ed25519' }> {
    return [{ key_id: this.key.keyId, public_key: this.key.publicKey, algorithm: 'Ed25519' }];
  }

  /** Signs what an intent allows; kept in the intent's row and in every request under it. */
  authorizeIntent(scope: IntentScope): IntentAuthorization {
    return signIntent(this.key, intentFields(scope));
  }

  /**
   * A function that signs each request under an intent that is not signed on its own: one
   * signature per request, over the intent's fields and the request's (PROTOCOL.md §9 Signed
   * once). The intent's expiry is fixed here, once, so every request names the same intent.
   */
  onceSignerFor(scope: IntentScope): OnceSigner {
    const key = this.key;
    const intent = intentFields(scope);
    const ttlMs = this.config.signing.requestTtlSeconds * 1000;
    // The operation's digest of each signed request, for the intent row (not computed twice).
    const digests = new WeakMap<GuestRequest, Buffer>();
    return {
      sign: (request) => {
        const digest = operationDigest(request);
        digests.set(request, digest);
        return signRequestOnce(key, request, intent, ttlMs, Date.now(), digest);
      },
      stored: (request) => {
        const a = request.authorization!;
        return {
          form: 'request',
          key_id: key.keyId,
          intent_digest: intent.intentDigest,
          expires_at_ms: Number(intent.expiresAtMs),
          request_id: request.requestId,
          nonce: a.nonce,
          request_expires_at_ms: Number(a.expiresAtMs),
          operation_sha256: (digests.get(request) ?? operationDigest(request)).toString('hex'),
          signature: Buffer.from(a.signature).toString('base64'),
        };
      },
    };
  }

  /** A function that signs each request sent under `intent`, with a fresh nonce and expiry. */
  signerFor(intent: IntentAuthorization): (request: GuestRequest) => GuestRequest {
    return (request) =>
      signRequest(this.key, request, intent, this.config.signing.requestTtlSeconds * 1000);
  }
}

/** The fields an intent authorization signs, its expiry counted from now. */
function intentFields(scope: IntentScope) {
  return {
    intentDigest: scope.intentDigest,
    nodeId: scope.nodeId,
    vmId: scope.vmId,
    operation: scope.operation,
    requestId: scope.requestId,
    expiresAtMs: BigInt(Date.now() + scope.ttlMs),
  };
}
