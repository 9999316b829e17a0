import { headers, type NatsConnection } from '@nats-io/transport-node';
import { parseCheckpoint, type AuditCheckpoint } from '@lq/audit';
import type { AuditCheckpointConfig } from '../config/env.schema.js';

/** JetStream API errors this code tells apart (nats-server's err_code). */
const STREAM_NOT_FOUND = 10059;
const NO_MESSAGE_FOUND = 10037;

/** The JetStream API answered with an error, or did not answer. */
export class CheckpointStreamError extends Error {
  override readonly name = 'CheckpointStreamError';
  constructor(
    message: string,
    readonly errCode?: number,
  ) {
    super(message);
  }
}

interface ApiError {
  error?: { code: number; err_code?: number; description?: string };
}

interface StreamConfig {
  name: string;
  subjects: string[];
  retention: 'limits';
  storage: 'file';
  discard: 'old';
  max_msgs: number;
  max_msg_size: number;
  num_replicas: number;
  duplicate_window: number;
  deny_delete: boolean;
  deny_purge: boolean;
  allow_rollup_hdrs: boolean;
}

/**
 * The copy of the audit checkpoints that the database cannot reach: a JetStream stream that
 * denies deleting and purging (deny_delete, deny_purge; the control plane's NATS user may
 * also only publish to its subject and read, deploy/nats/auth.conf). Spoken through the
 * JetStream JSON API ($JS.API.*) on the control plane's one connection: three calls, no client
 * library.
 */
export class CheckpointStream {
  constructor(
    private readonly nc: () => NatsConnection,
    private readonly config: AuditCheckpointConfig,
  ) {}

  /** The stream config this control plane creates and expects. */
  get streamConfig(): StreamConfig {
    return {
      name: this.config.stream,
      subjects: [this.config.subject],
      retention: 'limits',
      storage: 'file',
      discard: 'old',
      max_msgs: this.config.streamMaxMsgs,
      max_msg_size: 4096,
      num_replicas: this.config.streamReplicas,
      // Two replicas publishing one checkpoint within two minutes: kept once (Nats-Msg-Id).
      duplicate_window: 120_000_000_000,
      deny_delete: true,
      deny_purge: true,
      allow_rollup_hdrs: false,
    };
  }

  /**
   * Finds the stream, or creates it; throws when it cannot, or when the stream found allows
   * deleting or purging messages (then it is not tamper-proof: fix it as an operator).
   */
  async ensure(): Promise<'found' | 'created'> {
    const { stream } = this.config;
    const info = await this.api<{ config?: Partial<StreamConfig> }>(
      `$JS.API.STREAM.INFO.${stream}`,
      undefined,
      [STREAM_NOT_FOUND],
    );
    if (info.error?.err_code === STREAM_NOT_FOUND) {
      await this.api(`$JS.API.STREAM.CREATE.${stream}`, this.streamConfig);
      return 'created';
    }
    const c = info.config ?? {};
    if (c.deny_delete !== true || c.deny_purge !== true) {
      throw new CheckpointStreamError(
        `JetStream stream ${stream} allows ${c.deny_delete !== true ? 'deleting' : 'purging'} messages: its checkpoints could be removed (recreate it with deny_delete and deny_purge, README: audit checkpoints)`,
      );
    }
    if (!(c.subjects ?? []).includes(this.config.subject)) {
      throw new CheckpointStreamError(
        `JetStream stream ${stream} does not take subject ${this.config.subject} (it takes ${(c.subjects ?? []).join(', ') || 'none'})`,
      );
    }
    return 'found';
  }

  /** Appends a checkpoint; resolves once the stream has stored it. */
  async publish(c: AuditCheckpoint): Promise<void> {
    const h = headers();
    h.set('Nats-Msg-Id', `${c.seq}-${c.hash}`);
    h.set('Nats-Expected-Stream', this.config.stream);
    const reply = await this.request(this.config.subject, JSON.stringify(c), h);
    const ack = reply as ApiError & { stream?: string };
    if (ack.error || ack.stream !== this.config.stream) {
      throw new CheckpointStreamError(
        `JetStream did not store the checkpoint: ${ack.error?.description ?? JSON.stringify(ack)}`,
        ack.error?.err_code,
      );
    }
  }

  /** The latest checkpoint in the stream, or undefined when it holds none. */
  async latest(): Promise<AuditCheckpoint | undefined> {
    const r = await this.api<{ message?: { data?: string; seq?: number } }>(
      `$JS.API.STREAM.MSG.GET.${this.config.stream}`,
      { last_by_subj: this.config.subject },
      [NO_MESSAGE_FOUND],
    );
    if (r.error?.err_code === NO_MESSAGE_FOUND || !r.message?.data) {
      return undefined;
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(r.message.data, 'base64').toString('utf8'));
    } catch {
      throw new CheckpointStreamError(
        `message ${r.message.seq} of JetStream stream ${this.config.stream} is not a checkpoint (not JSON)`,
      );
    }
    try {
      return parseCheckpoint(body);
    } catch (err) {
      throw new CheckpointStreamError(
        `message ${r.message.seq} of JetStream stream ${this.config.stream} is not a checkpoint: ${(err as Error).message}`,
      );
    }
  }

  private async api<T>(
    subject: string,
    body?: unknown,
    expected: number[] = [],
  ): Promise<T & ApiError> {
    const r = (await this.request(subject, body === undefined ? '' : JSON.stringify(body))) as T &
      ApiError;
    if (r.error && !expected.includes(r.error.err_code ?? -1)) {
      throw new CheckpointStreamError(
        `JetStream ${subject}: ${r.error.description ?? 'error'} (${r.error.err_code ?? r.error.code})`,
        r.error.err_code,
      );
    }
    return r;
  }

  private async request(
    subject: string,
    payload: string,
    h?: ReturnType<typeof headers>,
  ): Promise<unknown> {
    let msg;
    try {
      msg = await this.nc().request(subject, payload, {
        timeout: this.config.timeoutMs,
        ...(h ? { headers: h } : {}),
      });
    } catch (err) {
      const e = err as Error & { cause?: Error };
      const why = e.cause?.name === 'NoRespondersError' ? 'JetStream is not enabled' : e.message;
      throw new CheckpointStreamError(`JetStream ${subject}: ${why}`);
    }
    try {
      return JSON.parse(msg.string()) as unknown;
    } catch {
      throw new CheckpointStreamError(`JetStream ${subject}: the answer is not JSON`);
    }
  }
}
