import type { AuditRecord } from '@lq/audit';
import type { GuestGrant, Permission } from '@lq/auth';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type {
  GuestOperation,
  GuestRequestSchema,
  RequestCaseOf,
  ResultCaseOf,
  ResultOf,
} from '@lq/proto';
import type { FileChunkPort } from '@lq/host';
import type { ControlPlaneConfig } from '../config/env.schema.js';
import type { VmLocation } from '../inventory/inventory.types.js';
import type { ConnectBinding } from './connect-binding.js';

/** What an operation adds to its outcome row. */
export type OutcomeFields = Pick<
  AuditRecord,
  'status' | 'exitCode' | 'stdout' | 'stderr' | 'output' | 'params'
>;

type OperationInit = NonNullable<MessageInitShape<typeof GuestRequestSchema>['operation']>;

/** The GuestRequest.operation of an operation: its case and the agent request it carries. */
export type OperationOf<O extends GuestOperation> = Extract<
  OperationInit,
  { case: RequestCaseOf<O> }
>;

/** What a node daemon answers for an operation. */
export type AnswerOf<O extends GuestOperation> = ResultOf<ResultCaseOf<O>>;

/**
 * The path between the audit intent and the outcome, as a spec's dispatch sees it: every
 * request it sends is on the audited intent's behalf (and signed for the node daemon).
 */
export interface Dispatcher {
  readonly where: VmLocation;
  readonly grant: GuestGrant;
  /**
   * The audit intent's request id. An operation that sends one retained request under its
   * intent (a synchronous execute) sends it under this id: the agent and the node daemon keep
   * its answer by it, so a resend after its NATS server died fetches that answer instead of
   * failing, and never runs it twice. An operation that sends several must not reuse it.
   */
  readonly requestId: string;
  /** Sends one operation to the VM's node and returns its answer (errors as they come). */
  send<O extends GuestOperation>(
    operation: O,
    request: OperationOf<O>,
    timeoutMs: number,
    requestId?: string,
  ): Promise<AnswerOf<O>>;
  /** File chunks to this VM through the same path (whole-file transfers). */
  filePort(): FileChunkPort;
}

/** What `prepare` makes of a valid input: everything the audited path needs. */
export interface Prepared<T> {
  /** The audit intent's parameters: never a secret, never a file's bytes. */
  params: Record<string, unknown>;
  /** execute: whom the command runs as (the bindings' run-as limits apply). */
  runAsUser?: string;
  /** File operations: the path, and whether a mode or owner is set (the file limits apply). */
  file?: {
    path: string;
    mode?: number;
    owner?: boolean;
    /** Further paths the operation touches (a rename's target): held to the same limits. */
    also?: string[];
  };
  /** Checks that need the VM's location (e.g. the node's chunk limit), before the intent. */
  check?(where: VmLocation, vmId: string): void;
  /** Does the operation once the intent is written: usually one request. */
  dispatch(d: Dispatcher): Promise<T>;
  /** The outcome row's fields for a result. */
  outcome(result: T): OutcomeFields;
  /**
   * The outcome row's parameters when the operation fails: what ties it to a larger act (a
   * rollout) for an auditor reading outcomes alone. None by default (the request id pairs it
   * with its intent).
   */
  failureParams?: Record<string, unknown>;
}

/** The configuration and clock an operation's spec may read. */
export interface SpecEnv {
  config: ControlPlaneConfig;
  /** A timeout the caller asked for in seconds (400 when out of range), or the default, in ms. */
  timeoutMs(seconds: number | undefined, defaultSeconds?: number): number;
}

/**
 * One guest operation as the control plane runs it (issue 16's one place per operation): the
 * permission it needs on the VM's project, how its input is validated, what its audit intent
 * records, what it sends and what its outcome row keeps. GuestOperationRunner runs every spec
 * through the same path: locate → authorize → intent → dispatch → outcome.
 */
export interface GuestOperationSpec<I, T> {
  /** The name in audit rows and metrics (the operation table's, or a composite's). */
  readonly name: string;
  readonly permission: Permission;
  /** Validates the input (400 naming the field, nothing sent) into what the path needs. */
  prepare(input: I, env: SpecEnv): Prepared<T>;
  /** Its VMService method, if it has one (Connect JSON and gRPC). */
  readonly connect?: ConnectBinding<I, T>;
}
