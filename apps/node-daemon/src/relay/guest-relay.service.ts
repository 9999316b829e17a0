import { Inject, Injectable, Logger } from '@nestjs/common';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  GUEST_OPERATION_TABLE,
  RESULT_OF_RESPONSE,
  GuestErrorCode,
  GuestResponseSchema,
  capabilityOf,
  isSubjectToken,
  type AgentPayload,
  type GuestOperation,
  type GuestRequest,
  type GuestResponse,
} from '@lq/proto';
import { AgentNotConnectedError, AgentRequestError, AgentTimeoutError } from '@lq/host';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';
import { AgentRegistryService } from '../agents/agent-registry.service.js';
import { RelayException } from './relay.exception.js';
import { ReplyCache } from './reply-cache.js';
import { RequestVerifier } from './request-verifier.js';

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
// The reply has to reach the caller before its own deadline passes.
const REPLY_MARGIN_MS = 100;
// Room in a NATS message for everything but the chunk itself.
const ENVELOPE_BYTES = 16 * 1024;

/** About what a result holds in memory: its captured output, and a little for the rest. */
function resultBytes(result: GuestResponse['result']): number {
  if (result.case === 'execute') {
    return result.value.stdout.length + result.value.stderr.length + 1024;
  }
  return 1024;
}

/**
 * The one service behind the daemon's transports: checks a GuestRequest, finds the VM's agent,
 * sends the operation with the request's deadline and maps the outcome to a GuestResponse.
 */
@Injectable()
export class GuestRelayService {
  private readonly log = new Logger('relay');
  private natsMaxPayload = 1024 * 1024;
  private readonly replies: ReplyCache;

  constructor(
    @Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig,
    @Inject(AgentRegistryService) private readonly agents: AgentRegistryService,
    @Inject(RequestVerifier) private readonly verifier: RequestVerifier,
  ) {
    this.replies = new ReplyCache(config.replyRetentionMs ?? 0, config.replyCacheBytes ?? 0);
  }

  /** The NATS server's max_payload bounds the chunks the daemon relays. */
  setNatsMaxPayload(bytes: number): void {
    this.natsMaxPayload = bytes;
  }

  get fileChunkMaxBytes(): number {
    return Math.min(this.config.fileChunkMaxBytes, this.natsMaxPayload - ENVELOPE_BYTES);
  }

  async handle(op: GuestOperation, request: GuestRequest): Promise<GuestResponse> {
    const started = process.hrtime.bigint();
    const base = { requestId: request.requestId, vmId: request.vmId, nodeId: this.config.nodeId };
    try {
      // Nothing is looked at further, let alone relayed, unless the control plane signed it.
      this.verifier.verify(op, request);
      const payload = this.validate(op, request);
      // A retained operation's result relayed before (its reply lost with the replica that
      // asked): the same answer again, nothing sent to the agent (which has forgotten it).
      const retained = GUEST_OPERATION_TABLE[op].retained && request.requestId !== '';
      const cached = retained ? this.replies.get(request.vmId, request.requestId) : undefined;
      if (cached) {
        return create(GuestResponseSchema, { ...base, result: cached });
      }
      const timeoutMs = this.timeoutOf(request);
      const vm = this.agents.get(request.vmId);
      if (!vm) {
        throw new RelayException(
          GuestErrorCode.VM_NOT_FOUND,
          `no VM ${request.vmId} on node ${this.config.nodeId}`,
        );
      }
      const client = vm.client;
      if (client.state !== 'ready' && (client.handshaking || client.state !== 'syncing')) {
        throw new RelayException(
          GuestErrorCode.AGENT_NOT_CONNECTED,
          `the guest agent of VM ${request.vmId} is not connected (${client.handshaking ? 'channel open, agent not answering' : client.state})`,
        );
      }
      if (client.capabilities.length > 0 && !client.capabilities.includes(capabilityOf(op))) {
        throw new RelayException(
          GuestErrorCode.AGENT_ERROR,
          `the guest agent of VM ${request.vmId} does not offer ${op} (policy or version; it offers ${client.capabilities.join(', ')})`,
          ErrorCode.OPERATION_BLOCKED,
        );
      }
      const reply = await client.request(payload, {
        timeoutMs,
        messageId: request.requestId || undefined,
      });
      const agentMicros = (process.hrtime.bigint() - started) / 1000n;
      const result = this.resultOf(op, reply.payload);
      if (retained) {
        this.replies.put(request.vmId, request.requestId, result, resultBytes(result));
      }
      return create(GuestResponseSchema, { ...base, agentMicros, result });
    } catch (err) {
      const e = this.toRelayException(err, request);
      if (e.code === GuestErrorCode.INTERNAL) {
        this.log.error(`${op} for ${request.vmId}: ${e.message}`);
      }
      return create(GuestResponseSchema, {
        ...base,
        result: {
          case: 'error',
          value: {
            code: e.code,
            message: e.message,
            agentCode: e.agentCode ?? ErrorCode.UNSPECIFIED,
          },
        },
      });
    }
  }

  /** A reply for a message that could not even be decoded. */
  invalid(message: string): GuestResponse {
    return create(GuestResponseSchema, {
      nodeId: this.config.nodeId,
      result: { case: 'error', value: { code: GuestErrorCode.INVALID_REQUEST, message } },
    });
  }

  /** A reply that could not be sent as it was, replaced by an INTERNAL error naming why. */
  internal(response: GuestResponse, err: Error): GuestResponse {
    return create(GuestResponseSchema, {
      requestId: response.requestId,
      vmId: response.vmId,
      nodeId: this.config.nodeId,
      result: {
        case: 'error',
        value: {
          code: GuestErrorCode.INTERNAL,
          message: `the reply could not be sent: ${err.message}`,
        },
      },
    });
  }

  private validate(op: GuestOperation, request: GuestRequest): AgentPayload {
    const invalid = (message: string) =>
      new RelayException(GuestErrorCode.INVALID_REQUEST, message);
    if (!isSubjectToken(request.vmId)) {
      throw invalid(`vm_id ${JSON.stringify(request.vmId)} must be 1-128 letters, digits, _ or -`);
    }
    if (request.requestId !== '' && !REQUEST_ID.test(request.requestId)) {
      throw invalid('request_id must be 1-128 printable ASCII characters');
    }
    const operation = request.operation;
    if (operation.case !== GUEST_OPERATION_TABLE[op].request) {
      throw invalid(
        `subject names ${op} but the request carries ${operation.case ?? 'no operation'}`,
      );
    }
    if (request.timeoutMs > this.config.maxTimeoutMs) {
      throw invalid(
        `timeout_ms ${request.timeoutMs} exceeds the daemon's maximum ${this.config.maxTimeoutMs} (LQ_MAX_TIMEOUT_MS)`,
      );
    }
    const chunkMax = this.fileChunkMaxBytes;
    if (
      operation.case === 'fileRead' &&
      (operation.value.length === 0 || operation.value.length > chunkMax)
    ) {
      throw invalid(
        `file_read length must be 1..${chunkMax} bytes (got ${operation.value.length})`,
      );
    }
    if (operation.case === 'fileWrite' && operation.value.data.length > chunkMax) {
      throw invalid(
        `file_write data of ${operation.value.data.length} bytes exceeds the ${chunkMax}-byte chunk limit`,
      );
    }
    return operation;
  }

  private timeoutOf(request: GuestRequest): number {
    const wanted = request.timeoutMs || this.config.defaultTimeoutMs;
    return Math.max(wanted - REPLY_MARGIN_MS, Math.min(wanted, 50));
  }

  /** The agent's response as the GuestResponse result the operation table names for it. */
  private resultOf(op: GuestOperation, payload: AgentPayload): GuestResponse['result'] {
    const def = GUEST_OPERATION_TABLE[op];
    const result = payload.case === undefined ? undefined : RESULT_OF_RESPONSE.get(payload.case);
    if (payload.case !== def.response || !result) {
      throw new RelayException(
        GuestErrorCode.INTERNAL,
        `agent answered ${op} with an unexpected ${payload.case ?? 'message'} (expected ${def.response})`,
      );
    }
    // The response and result cases carry the same agent message (node_daemon.proto).
    return { case: result, value: payload.value } as GuestResponse['result'];
  }

  private toRelayException(err: unknown, request: GuestRequest): RelayException {
    if (err instanceof RelayException) {
      return err;
    }
    if (err instanceof AgentRequestError) {
      return new RelayException(
        GuestErrorCode.AGENT_ERROR,
        `agent of VM ${request.vmId}: ${err.codeName}: ${err.message}`,
        err.code,
      );
    }
    if (err instanceof AgentTimeoutError) {
      return new RelayException(
        GuestErrorCode.AGENT_TIMEOUT,
        `the guest agent of VM ${request.vmId} did not answer within ${err.timeoutMs} ms`,
      );
    }
    if (err instanceof AgentNotConnectedError) {
      return new RelayException(
        GuestErrorCode.AGENT_NOT_CONNECTED,
        `the guest agent of VM ${request.vmId} is not connected: ${err.message}`,
      );
    }
    return new RelayException(GuestErrorCode.INTERNAL, (err as Error)?.message ?? String(err));
  }
}
