import { Inject, Injectable } from '@nestjs/common';
import { AuditService, intentDigestOfRecord, type AuditActor } from '@lq/audit';
import type { GuestGrant } from '@lq/auth';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  IntentAuthorizationSchema,
  FileReadRequestSchema,
  FileWriteRequestSchema,
  GUEST_OPERATION_TABLE,
  GuestRequestSchema,
  isSubjectToken,
  type GuestOperation,
  type GuestRequest,
  type IntentAuthorization,
} from '@lq/proto';
import { callGuest } from '@lq/host';
import { VmAccessService } from '../access/vm-access.service.js';
import { actorOf } from '../audit/audit-actor.js';
import type { Caller } from '../common/caller.js';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { InventoryService } from '../inventory/inventory.service.js';
import type { VmLocation } from '../inventory/inventory.types.js';
import { MetricsService } from '../metrics/metrics.service.js';
import { NatsService } from '../nats/nats.service.js';
import { NodeDaemonWatch } from '../nats/node-daemon.watch.js';
import { RequestSigner, type IntentScope } from '../signing/request-signer.js';
import { guestFailure, isGuestError } from './guest-errors.js';
import type {
  AnswerOf,
  Dispatcher,
  GuestOperationSpec,
  OperationOf,
  OutcomeFields,
  Prepared,
  SpecEnv,
} from './guest-operation.js';
import { VmGuestErrorCode, VmGuestException } from './vm-guest.exception.js';

/** The audit row every row of one operation shares (intent, outcome). */
export type OperationRow = AuditActor & {
  vmId: string;
  nodeId: string;
  projectId: string;
  operation: string;
};

export interface BeginOptions {
  /** The request id of its audit rows and of the request to the node (one per execution). */
  requestId?: string;
  /** Parameters the intent records on top of the spec's (an execution id, a run id). */
  params?: Record<string, unknown>;
  /** Re-read the VM's location (not the cache) when it is not ready: async starts do. */
  freshLocation?: boolean;
}

/**
 * What acting under a written intent takes: its rows' fields, a dispatcher that sends on its
 * behalf, and `succeeded` / `failed` that write its outcome. A replica that adopts an execution
 * another one began gets one from the stored intent (GuestOperationRunner.resume).
 */
export interface IntentTicket<T> {
  readonly where: Pick<VmLocation, 'nodeId'>;
  readonly row: OperationRow;
  readonly dispatcher: Pick<Dispatcher, 'send'>;
  /** The outcome row of a result. */
  succeeded(result: T, durationMs: number): Promise<void>;
  /** The outcome row of a failure, mapped as transports report it; returns that exception. */
  failed(err: unknown, durationMs: number, status?: string): Promise<VmGuestException | Error>;
}

/**
 * An operation whose intent is written: its dispatcher sends on the intent's behalf, and
 * `succeeded` / `failed` write its outcome. Async executions hold one while they run.
 */
export interface Ticket<T> extends IntentTicket<T> {
  readonly prepared: Prepared<T>;
  readonly where: VmLocation;
  readonly grant: GuestGrant;
  readonly dispatcher: Dispatcher;
  /** The intent's signed authorization (kept with an execution, so another replica may adopt it). */
  readonly intent: IntentAuthorization;
}

/**
 * An intent as stored beside an execution (JSON): the fields of its audit rows and its signed
 * authorization, which is all another replica needs to send under it and write its outcome.
 */
export interface StoredIntent {
  row: OperationRow;
  authorization: {
    key_id: string;
    intent_digest: string;
    node_id: string;
    vm_id: string;
    operation: string;
    request_id: string;
    expires_at_ms: string;
    signature: string;
  };
}

/** A ticket's intent as it is stored. */
export function storedIntentOf(ticket: Ticket<unknown>): StoredIntent {
  const a = ticket.intent;
  return {
    row: ticket.row,
    authorization: {
      key_id: a.keyId,
      intent_digest: a.intentDigest,
      node_id: a.nodeId,
      vm_id: a.vmId,
      operation: a.operation,
      request_id: a.requestId,
      expires_at_ms: a.expiresAtMs.toString(),
      signature: Buffer.from(a.signature).toString('base64'),
    },
  };
}

function intentOfStored(s: StoredIntent): IntentAuthorization {
  const a = s.authorization;
  return create(IntentAuthorizationSchema, {
    keyId: a.key_id,
    intentDigest: a.intent_digest,
    nodeId: a.node_id,
    vmId: a.vm_id,
    operation: a.operation,
    requestId: a.request_id,
    expiresAtMs: BigInt(a.expires_at_ms),
    signature: Buffer.from(a.signature, 'base64'),
  });
}

/** A signed intent's authorization as its row keeps it (params.authorization). */
function storedAuthorizationOf(intent: IntentAuthorization): Record<string, unknown> {
  return {
    key_id: intent.keyId,
    intent_digest: intent.intentDigest,
    expires_at_ms: Number(intent.expiresAtMs),
    signature: Buffer.from(intent.signature).toString('base64'),
  };
}

/**
 * The one audited path of every guest operation, whatever the transport (REST, Connect, gRPC)
 * and whether it waits (synchronous), returns at once (executions) or fans out (fleet runs):
 *
 *   input validated (400, nothing sent) → VM located → permission and the bindings' limits
 *   checked on its project (403, audited) → audit intent written (503 and nothing sent if it
 *   cannot be) → request(s) to the VM's node → outcome row (result, or the mapped error).
 *
 * Nothing reaches a guest except through a Ticket's dispatcher.
 */
@Injectable()
export class GuestOperationRunner {
  /** The configuration and timeout rule specs validate with (fleet runs validate up front). */
  readonly env: SpecEnv;

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(InventoryService) private readonly inventory: InventoryService,
    @Inject(VmAccessService) private readonly access: VmAccessService,
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(MetricsService) private readonly metrics: MetricsService,
    @Inject(RequestSigner) private readonly signer: RequestSigner,
    @Inject(NodeDaemonWatch) private readonly daemons: NodeDaemonWatch,
  ) {
    this.env = { config, timeoutMs: (s, d) => this.timeoutMs(s, d) };
  }

  /**
   * Runs one operation to its end and answers its result (or throws the mapped error).
   *
   * Signed once (PROTOCOL.md §9): the first request is signed before the intent row is written,
   * the row keeps that signature, and the request leaves only once the row is committed; every
   * request carries one signature over itself and the intent, not an intent's and its own. An
   * intent that fails to be written fails every send (503, nothing sent, no outcome row).
   */
  run<I, T>(
    spec: GuestOperationSpec<I, T>,
    caller: Caller,
    vmId: string,
    input: I,
    options: BeginOptions = {},
  ): Promise<T> {
    return this.metrics.measure(spec.name, async () => {
      const plan = await this.plan(spec, caller, vmId, input, options);
      const { prepared, where, row, params } = plan;
      const signer = this.signer.onceSignerFor(plan.scope);
      let written: Promise<void> | undefined;
      let intentError: Error | undefined;
      const writeIntent = (authorization: Record<string, unknown>) =>
        (written ??= this.audit
          .intent({ ...row, params: { ...params, authorization } })
          .catch((err: unknown) => {
            intentError = err instanceof Error ? err : new Error(String(err));
            throw intentError;
          }));
      const dispatcher = this.dispatcher(
        where,
        plan.grant,
        caller.principal.username,
        vmId,
        row.requestId,
        options.requestId,
        signer.sign,
        (signed) => written ?? writeIntent(signer.stored(signed)),
      );
      // An operation that ends before it sent anything still gets its intent (and an outcome).
      const unsent = () =>
        written ?? writeIntent(storedAuthorizationOf(this.signer.authorizeIntent(plan.scope)));
      const { succeeded, failed } = this.outcomes(
        row,
        (result: T) => prepared.outcome(result),
        prepared.failureParams,
      );
      const started = performance.now();
      let result: T;
      try {
        result = await prepared.dispatch(dispatcher);
      } catch (err) {
        if (intentError !== undefined) {
          throw intentError;
        }
        await unsent();
        throw await failed(err, performance.now() - started);
      }
      if (intentError !== undefined) {
        throw intentError;
      }
      await unsent();
      await succeeded(result, performance.now() - started);
      return result;
    });
  }

  /**
   * Everything up to the written intent; the caller dispatches and writes the outcome through
   * the ticket (an execution that outlives its HTTP request). Its intent is signed on its own
   * and stored, so another replica can send under it (resume).
   */
  async begin<I, T>(
    spec: GuestOperationSpec<I, T>,
    caller: Caller,
    vmId: string,
    input: I,
    options: BeginOptions = {},
  ): Promise<Ticket<T>> {
    const { prepared, where, grant, row, params, scope } = await this.plan(
      spec,
      caller,
      vmId,
      input,
      options,
    );
    // The intent's authorization is signed over the intent's own content and kept in its row;
    // every request under it carries it, and a node daemon relays nothing without it.
    const intent = this.signer.authorizeIntent(scope);
    await this.audit.intent({
      ...row,
      params: { ...params, authorization: storedAuthorizationOf(intent) },
    });
    const dispatcher = this.dispatcher(
      where,
      grant,
      caller.principal.username,
      vmId,
      row.requestId,
      options.requestId,
      this.signer.signerFor(intent),
    );
    return {
      prepared,
      where,
      grant,
      row,
      intent,
      dispatcher,
      ...this.outcomes(row, (result: T) => prepared.outcome(result), prepared.failureParams),
    };
  }

  /**
   * Input validated, VM located, caller authorized: the intent's row, parameters and what its
   * authorization covers (its digest), before anything is signed or written.
   */
  private async plan<I, T>(
    spec: GuestOperationSpec<I, T>,
    caller: Caller,
    vmId: string,
    input: I,
    options: BeginOptions,
  ) {
    if (!isSubjectToken(vmId)) {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        'vm_id must be 1-128 letters, digits, _ or -',
      );
    }
    const prepared = spec.prepare(input, this.env);
    let where = await this.inventory.locate(vmId);
    if (options.freshLocation && where.agentState !== 'ready') {
      // A location cached while the agent was away would refuse it for a while after it is
      // back: read the inventory itself before refusing.
      this.inventory.forget(vmId);
      where = await this.inventory.locate(vmId);
    }
    const grant = await this.authorize(spec, prepared, caller, vmId, where);
    prepared.check?.(where, vmId);
    const row: OperationRow = {
      ...actorOf(caller.principal, caller),
      ...(options.requestId ? { requestId: options.requestId } : {}),
      vmId,
      nodeId: where.nodeId,
      projectId: where.projectId,
      operation: spec.name,
    };
    const params: Record<string, unknown> = { ...prepared.params, ...options.params };
    const scope: IntentScope = {
      intentDigest: intentDigestOfRecord({ ...row, params }),
      nodeId: where.nodeId,
      vmId,
      operation: spec.name,
      requestId: row.requestId,
      ttlMs: this.intentTtlMs(),
    };
    return { prepared, where, grant, row, params, scope };
  }

  /**
   * A ticket for an intent another replica wrote and can no longer act under (it died): its
   * requests are signed under the stored authorization (the same key), its outcome row pairs
   * with that intent. Nothing is authorized again: the intent was, when it was written.
   */
  resume<T>(stored: StoredIntent, outcome: (result: T) => OutcomeFields): IntentTicket<T> {
    const row = stored.row;
    const where = { nodeId: row.nodeId };
    const send = this.sender(
      where,
      row.actor,
      row.vmId,
      row.requestId,
      this.signer.signerFor(intentOfStored(stored)),
    );
    return { where, row, dispatcher: { send }, ...this.outcomes(row, outcome) };
  }

  private outcomes<T>(
    row: OperationRow,
    outcome: (result: T) => OutcomeFields,
    failureParams?: Record<string, unknown>,
  ): Pick<IntentTicket<T>, 'succeeded' | 'failed'> {
    const vmId = row.vmId;
    const where = { nodeId: row.nodeId };
    return {
      succeeded: (result, durationMs) =>
        this.audit.record({
          ...row,
          kind: 'outcome',
          ...outcome(result),
          durationMs,
        }),
      failed: async (err, durationMs, status) => {
        const e = guestFailure(err, vmId, where.nodeId);
        if (isGuestError(e, VmGuestErrorCode.VM_NOT_FOUND) || e.code === 'VM_NOT_FOUND') {
          // The node no longer has it: it moved or left; the next call reads the inventory.
          this.inventory.forget(vmId);
        }
        const agentCode = e instanceof VmGuestException ? e.agentCode : undefined;
        await this.audit.record({
          ...row,
          kind: 'outcome',
          status: status ?? (agentCode ? `${e.code}:${agentCode}` : e.code),
          error: e.message,
          durationMs,
          ...(failureParams ? { params: failureParams } : {}),
        });
        return e;
      },
    };
  }

  /** An outcome row written outside a ticket (an execution recovered after a restart). */
  outcome(row: OperationRow, fields: OutcomeFields & { error?: string; durationMs?: number }) {
    return this.audit.record({ ...row, kind: 'outcome', ...fields });
  }

  private authorize(
    spec: GuestOperationSpec<unknown, unknown>,
    prepared: Prepared<unknown>,
    caller: Caller,
    vmId: string,
    where: VmLocation,
  ): Promise<GuestGrant> {
    const scope = { vmId, projectId: where.projectId, nodeId: where.nodeId };
    const permission = spec.permission;
    if (prepared.runAsUser !== undefined) {
      return this.access.requireExec(caller, scope, prepared.runAsUser);
    }
    if (prepared.file && (permission === 'guest.file.read' || permission === 'guest.file.write')) {
      return this.access.requireFile(caller, permission, scope, spec.name, prepared.file);
    }
    return this.access.requireGuest(caller, permission, scope, spec.name);
  }

  private dispatcher(
    where: VmLocation,
    grant: GuestGrant,
    actor: string,
    vmId: string,
    intentRequestId: string,
    requestId: string | undefined,
    sign: (request: GuestRequest) => GuestRequest,
    gate?: (signed: GuestRequest) => Promise<void>,
  ): Dispatcher {
    const send = this.sender(where, actor, vmId, requestId, sign, gate);
    return {
      where,
      grant,
      requestId: intentRequestId,
      send,
      // Every chunk is its own request on the same audited intent (no shared request id: the
      // agent would take a later chunk for a retry of the first).
      filePort: () => ({
        chunkMaxBytes: where.fileChunkMaxBytes || 512 * 1024,
        read: (request, timeoutMs = 30_000) =>
          send(
            'file.read',
            { case: 'fileRead', value: create(FileReadRequestSchema, request) },
            timeoutMs,
            '',
          ),
        write: (request, timeoutMs = 30_000) =>
          send(
            'file.write',
            { case: 'fileWrite', value: create(FileWriteRequestSchema, request) },
            timeoutMs,
            '',
          ),
      }),
    };
  }

  /**
   * Sends under an intent. With `gate`, each request is signed first and published only once
   * the gate (the intent row that keeps the first request's signature) has passed; a resend is
   * signed again (a new nonce).
   */
  private sender(
    where: Pick<VmLocation, 'nodeId'>,
    actor: string,
    vmId: string,
    requestId: string | undefined,
    sign: (request: GuestRequest) => GuestRequest,
    gate?: (signed: GuestRequest) => Promise<void>,
  ): Dispatcher['send'] {
    const call = <O extends GuestOperation>(
      operation: O,
      request: MessageInitShape<typeof GuestRequestSchema>,
      signer: (request: GuestRequest) => GuestRequest,
    ) =>
      callGuest(
        this.nats.connection,
        where.nodeId,
        operation,
        request,
        GUEST_OPERATION_TABLE[operation].result,
        this.config.natsSlackMs,
        signer,
        {
          maxBytes: this.config.output.replyMaxBytes,
          partStallMs: this.config.output.replyPartStallMs,
          // The node's daemon restarted or reconnected: what is safe to send again is resent.
          nodeLost: (listener) => this.daemons.onNode(where.nodeId, listener),
        },
      ) as Promise<AnswerOf<O>>;
    return async <O extends GuestOperation>(
      operation: O,
      request: OperationOf<O>,
      timeoutMs: number,
      id = requestId ?? '',
    ): Promise<AnswerOf<O>> => {
      const init = { requestId: id, vmId, timeoutMs, actor, operation: request };
      if (!gate) {
        return call(operation, init, sign);
      }
      const signed = sign(create(GuestRequestSchema, init));
      await gate(signed);
      let first = true;
      return call(operation, signed, (r) => {
        if (first) {
          first = false;
          return r;
        }
        return sign(r);
      });
    };
  }

  /**
   * How long an intent's requests may be signed under it: the longest operation, an agent's
   * reconnection grace, and a minute of slack.
   */
  private intentTtlMs(): number {
    return this.config.guestTimeoutMaxSeconds * 1000 + this.config.execLostGraceMs + 60_000;
  }

  /** A timeout the caller asked for in seconds, or the default; 400 when out of range. */
  private timeoutMs(seconds: number | undefined, defaultSeconds?: number): number {
    const s = seconds || defaultSeconds || this.config.guestTimeoutSeconds;
    const max = this.config.guestTimeoutMaxSeconds;
    if (Number.isInteger(s) && s > max) {
      // lqctl and other clients turn this into their own terms ("--timeout 2h exceeds …").
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        `timeout_seconds ${s} exceeds the maximum ${max} (LQ_GUEST_TIMEOUT_MAX_SECONDS)`,
      );
    }
    if (!Number.isInteger(s) || s < 1) {
      throw new VmGuestException(
        VmGuestErrorCode.INVALID_REQUEST,
        `timeout_seconds must be a whole number between 1 and ${max}`,
      );
    }
    return s * 1000;
  }
}
