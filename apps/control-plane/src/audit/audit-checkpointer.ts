import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { KeyObject } from 'node:crypto';
import {
  AuditRepository,
  ChainVerifier,
  CheckpointRepository,
  checkpointProblem,
  checkpointPublicKey,
  signCheckpoint,
  type AuditCheckpoint,
} from '@lq/audit';
import type { AuditPublicKey } from '@lq/api';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { NatsService } from '../nats/nats.service.js';
import { RequestSigner } from '../signing/request-signer.js';
import { CheckpointStream } from './checkpoint-stream.js';

const SEGMENT_PAGE = 5000;
/** A problem that repeats (JetStream away, a broken chain) is logged once per this. */
const REPEAT_LOG_MS = 60_000;

/**
 * Signs checkpoints of the audit chain head with the control plane's Ed25519 key: once the head
 * is LQ_AUDIT_CHECKPOINT_ROWS past the last checkpoint, and every LQ_AUDIT_CHECKPOINT_INTERVAL_MS
 * while it moves. Each goes to the checkpoint table and to the JetStream stream (which the
 * database cannot reach and nobody may purge).
 *
 * A checkpoint is only signed over rows verified since the last trusted one: a head whose rows
 * were cut off or rewritten is never signed; the break is logged and /api/audit/verify names it.
 */
@Injectable()
export class AuditCheckpointer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('audit');
  private readonly stream: CheckpointStream | undefined;
  private streamReady = false;
  /** The last checkpoint this replica signed or verified its chain up to. */
  private last: AuditCheckpoint | undefined;
  /** Signed but not yet in the stream (JetStream was away). */
  private unpublished: AuditCheckpoint | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly lastLogged = new Map<string, number>();
  private stopped = false;

  constructor(
    @Inject(AuditRepository) private readonly audit: AuditRepository,
    @Inject(CheckpointRepository) private readonly checkpoints: CheckpointRepository,
    @Inject(RequestSigner) private readonly signer: RequestSigner,
    @Inject(NatsService) nats: NatsService,
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
  ) {
    this.stream =
      config.auditCheckpoint.jetstream === 'off'
        ? undefined
        : new CheckpointStream(() => nats.connection, config.auditCheckpoint);
  }

  /** The key checkpoints are signed with (GET /api/audit/public-key). */
  publicKey(): AuditPublicKey {
    const k = this.signer.checkpointKey;
    return { key_id: k.keyId, public_key: k.publicKey, algorithm: 'Ed25519' };
  }

  /** The public keys checkpoints are verified with, by key id. */
  verifyingKeys(): Map<string, KeyObject> {
    const k = this.signer.checkpointKey;
    return new Map([[k.keyId, checkpointPublicKey(k.publicKey)]]);
  }

  /** The stream's latest checkpoint; undefined when JetStream is off or holds none. */
  async streamLatest(): Promise<AuditCheckpoint | undefined> {
    return this.stream?.latest();
  }

  get jetstreamEnabled(): boolean {
    return this.stream !== undefined;
  }

  async onApplicationBootstrap(): Promise<void> {
    const cfg = this.config.auditCheckpoint;
    const key = this.publicKey();
    this.log.log(
      `audit checkpoints are signed with key ${key.key_id} (public key ${key.public_key}; GET /api/audit/public-key) every ${cfg.rows} rows and ${cfg.intervalMs} ms`,
    );
    if (this.stream) {
      try {
        const how = await this.stream.ensure();
        this.streamReady = true;
        this.log.log(`audit checkpoints go to JetStream stream ${cfg.stream} (${how})`);
      } catch (err) {
        if (cfg.jetstream === 'required') {
          throw new Error(`LQ_AUDIT_CHECKPOINT_JETSTREAM=required: ${(err as Error).message}`, {
            cause: err,
          });
        }
        this.log.warn(
          `audit checkpoints go to the checkpoint table only until JetStream stream ${cfg.stream} can be used: ${(err as Error).message}`,
        );
      }
    } else {
      this.log.warn(
        'LQ_AUDIT_CHECKPOINT_JETSTREAM=off: audit checkpoints are kept in the database only, where its owner can remove them',
      );
    }
    this.audit.onAppended = (seq) => {
      // Not while one runs: rows appended meanwhile are not yet `rows` past the head it signs
      // (this.last moves when it ends), and a kick would sign again a few rows later.
      if (!this.running && seq - (this.last?.seq ?? 0) >= cfg.rows) {
        this.kick();
      }
    };
    this.timer = setInterval(() => this.kick(), cfg.intervalMs);
    this.timer.unref();
    this.kick();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.audit.onAppended = undefined;
    await this.running;
  }

  /** Checkpoints now (when the head moved), or after the one under way. */
  kick(): void {
    if (this.stopped) {
      return;
    }
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.checkpoint()
      .then(
        () => undefined,
        (err: unknown) =>
          this.logOnce('failed', `audit checkpoint failed: ${(err as Error).message}`),
      )
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Signs and stores a checkpoint of the head if it moved; returns it. */
  async checkpoint(): Promise<AuditCheckpoint | undefined> {
    await this.publishPending();
    const head = await this.checkpoints.head();
    if (!head || (this.last && head.seq <= this.last.seq && this.last.hash === hex(head.hash))) {
      return undefined;
    }
    const base = await this.base();
    if (base && base.seq > head.seq) {
      this.logOnce(
        'truncated',
        `audit rows ${head.seq + 1}..${base.seq} are missing: the checkpoint signed at ${base.at} covers row ${base.seq}; no checkpoint is signed until this is resolved (GET /api/audit/verify)`,
      );
      return undefined;
    }
    const broken = await this.verifySegment(base, head.seq);
    if (broken) {
      this.logOnce(
        'broken',
        `audit chain broken at row ${broken.seq} (${broken.reason}); no checkpoint is signed until this is resolved (GET /api/audit/verify)`,
      );
      return undefined;
    }
    const cp = signCheckpoint(this.signer.checkpointKey, { seq: head.seq, hash: hex(head.hash) });
    await this.checkpoints.insert(cp);
    this.last = cp;
    this.unpublished = cp;
    await this.publishPending();
    return cp;
  }

  /** The latest trusted checkpoint: this replica's, the table's or the stream's. */
  private async base(): Promise<AuditCheckpoint | undefined> {
    const keys = this.verifyingKeys();
    const candidates: AuditCheckpoint[] = this.last ? [this.last] : [];
    const table = await this.checkpoints.latest();
    if (table) {
      candidates.push(table);
    }
    if (this.stream && this.streamReady) {
      const streamed = await this.stream.latest().catch(() => undefined);
      if (streamed) {
        candidates.push(streamed);
      }
    }
    return candidates
      .filter((c) => checkpointProblem(c, keys) === undefined)
      .reduce<AuditCheckpoint | undefined>((a, c) => (!a || c.seq > a.seq ? c : a), undefined);
  }

  /** Verifies rows (base.seq, to] chain from base; the first break, if any. */
  private async verifySegment(base: AuditCheckpoint | undefined, to: number) {
    const verifier = new ChainVerifier(
      new Map(),
      base ? { seq: base.seq, hash: Buffer.from(base.hash, 'hex') } : undefined,
    );
    let from = (base?.seq ?? 0) + 1;
    while (from <= to && !this.stopped) {
      const page = await this.checkpoints.rows(from, Math.min(SEGMENT_PAGE, to - from + 1));
      page.forEach((r) => verifier.push(r));
      if (page.length === 0) {
        break;
      }
      from = page.at(-1)!.seq + 1;
    }
    const report = verifier.finish();
    if (!report.first_broken && (report.last_seq ?? base?.seq ?? 0) < to) {
      return { seq: (report.last_seq ?? base?.seq ?? 0) + 1, reason: 'rows missing' };
    }
    return report.first_broken;
  }

  private async publishPending(): Promise<void> {
    const cp = this.unpublished;
    if (!this.stream || !cp) {
      return;
    }
    try {
      if (!this.streamReady) {
        await this.stream.ensure();
        this.streamReady = true;
      }
      await this.stream.publish(cp);
      if (this.unpublished === cp) {
        this.unpublished = undefined;
      }
    } catch (err) {
      this.logOnce(
        'jetstream',
        `audit checkpoint of row ${cp.seq} is in the table but not yet in JetStream: ${(err as Error).message}`,
      );
    }
  }

  private logOnce(what: string, message: string): void {
    const now = Date.now();
    if (now - (this.lastLogged.get(what) ?? 0) >= REPEAT_LOG_MS) {
      this.lastLogged.set(what, now);
      this.log.error(message);
    }
  }
}

const hex = (b: Buffer) => b.toString('hex');
