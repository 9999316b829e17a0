import type { KeyObject } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  GuestErrorCode,
  relayedUnderIntent,
  type GuestOperation,
  type GuestRequest,
} from '@lq/proto';
import { publicKeyFromBase64, signatureProblem } from '@lq/host';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';
import { RelayException } from './relay.exception.js';

/**
 * Checks that a guest request comes from the control plane (PROTOCOL.md §9 Signed requests)
 * before anything is relayed: signed with a trusted key, for this node, this VM and this
 * operation (or a ping under any, or one of its companions in the operation table), under an intent and with a request signature that have not
 * expired, and never seen before (each nonce is remembered until its request expires).
 */
@Injectable()
export class RequestVerifier {
  private readonly keys: ReadonlyMap<string, KeyObject>;
  /** Nonces of accepted requests → when they expire (ms). */
  private readonly seen = new Map<string, number>();

  constructor(@Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig) {
    this.keys = new Map(
      config.signatures.trustedKeys.map((k) => {
        const { key, keyId } = publicKeyFromBase64(k);
        return [keyId, key];
      }),
    );
  }

  /** Throws SIGNATURE_REFUSED naming why, or returns (and remembers the nonce). */
  verify(op: GuestOperation, request: GuestRequest, now = Date.now()): void {
    const refuse = (why: string) =>
      new RelayException(
        GuestErrorCode.SIGNATURE_REFUSED,
        `${op} for VM ${request.vmId || '(none)'} refused: ${why}`,
      );
    const problem = signatureProblem(request, this.keys);
    if (problem) {
      throw refuse(problem);
    }
    const auth = request.authorization!;
    const intent = auth.intent!;
    if (intent.nodeId !== this.config.nodeId) {
      throw refuse(`it was signed for node ${JSON.stringify(intent.nodeId)}, not this one`);
    }
    if (intent.vmId !== request.vmId) {
      throw refuse(`it was signed for VM ${JSON.stringify(intent.vmId)}`);
    }
    if (!relayedUnderIntent(intent.operation, op)) {
      throw refuse(`it was signed for ${JSON.stringify(intent.operation)}, not ${op}`);
    }
    const skew = this.config.signatures.clockSkewMs;
    if (Number(intent.expiresAtMs) + skew < now) {
      throw refuse('its intent has expired');
    }
    const expires = Number(auth.expiresAtMs);
    if (expires + skew < now) {
      throw refuse(`it expired ${Math.round((now - expires) / 1000)} s ago`);
    }
    this.prune(now);
    if (this.seen.has(auth.nonce)) {
      throw refuse('it was seen before (a replay)');
    }
    if (this.seen.size >= this.config.signatures.replayCacheMax) {
      throw refuse(
        `${this.seen.size} signed requests are awaiting expiry (LQ_REPLAY_CACHE_MAX); retry shortly`,
      );
    }
    this.seen.set(auth.nonce, expires + skew);
  }

  private lastPrune = 0;

  /** Forgets nonces whose requests have expired (at most once a second). */
  private prune(now: number): void {
    if (now - this.lastPrune < 1000) {
      return;
    }
    this.lastPrune = now;
    for (const [nonce, until] of this.seen) {
      if (until < now) {
        this.seen.delete(nonce);
      }
    }
  }
}
