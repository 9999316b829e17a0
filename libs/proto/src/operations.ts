// The one table of guest operations (PROTOCOL.md §6 and §9). Each operation is named once, here:
// its request and response cases on the agent channel, its result case in a node daemon's
// GuestResponse, the agent policy name that enables it, the capability the agent announces,
// whether its result is retained until acknowledged, whether a frozen guest serves it, and the
// deadline a caller gives when it names none. The agent's allow-list and dispatcher, the NATS
// subjects, the relay, the host client's acknowledgements and the control plane's operation
// specs all derive from it, so a new operation is a row here plus its handler and its spec.
import type { GuestRequest, GuestResponse } from './gen/limiquantix/node/v1/node_daemon_pb.js';
import type { AgentPayload, AgentPayloadCase } from './framing/message-codec.js';

type Case<T extends { case: unknown }> = Exclude<T['case'], undefined>;

/** What a node daemon carries for an operation (GuestRequest.operation). */
export type GuestRequestCase = Case<GuestRequest['operation']>;
/** What a node daemon answers with (GuestResponse.result), errors aside. */
export type GuestResultCase = Exclude<Case<GuestResponse['result']>, 'error'>;

export interface GuestOperationDef {
  /** The request: GuestRequest.operation and AgentPayload share the case name. */
  readonly request: GuestRequestCase & AgentPayloadCase;
  /** The agent's AgentPayload answer. */
  readonly response: AgentPayloadCase;
  /** The node daemon's GuestResponse.result. */
  readonly result: GuestResultCase;
  /** The agent policy name (policy.allowed_operations / blocked_operations) that enables it. */
  readonly policy: string;
  /** Capabilities the agent announces when the policy enables it; the first is what it needs. */
  readonly capabilities: readonly string[];
  /** The agent keeps the result until the host acknowledges it: re-running would act twice. */
  readonly retained: boolean;
  /**
   * Changes nothing in the guest: a request whose reply may have been lost is simply sent
   * again (a NATS server died under it). A retained operation with its request id is safe to
   * send again too (the same id gets the same result); anything else fails fast instead.
   */
  readonly readOnly: boolean;
  /** Served while the guest's filesystems are frozen (anything else could block on them). */
  readonly whileFrozen: boolean;
  /** A caller's deadline when it names none, ms (the control plane's spec may override). */
  readonly defaultTimeoutMs: number;
  /** Agent version that introduced it. */
  readonly since: string;
  /**
   * Other operations a node daemon relays under this operation's signed intent (a composite
   * that reads and confirms what it applied, audited as one operation). Empty for most.
   */
  readonly companions: readonly string[];
}

/** A row: the defaults, with the literal case names kept for the types derived below. */
const op = <
  const D extends Pick<GuestOperationDef, 'request' | 'response' | 'result' | 'policy'> &
    Partial<GuestOperationDef>,
>(
  def: D,
): Omit<GuestOperationDef, keyof D> & D => ({
  capabilities: [def.policy],
  retained: false,
  readOnly: false,
  whileFrozen: false,
  defaultTimeoutMs: 30_000,
  since: '0.1.0',
  companions: [],
  ...def,
});

/** Every guest operation, by its name (the `<op>` of `lq.v1.node.<nodeId>.guest.<op>`). */
export const GUEST_OPERATION_TABLE = {
  ping: op({
    request: 'ping',
    response: 'pong',
    result: 'pong',
    policy: 'ping',
    whileFrozen: true,
    readOnly: true,
  }),
  info: op({
    request: 'getInfo',
    response: 'getInfoResponse',
    result: 'getInfo',
    policy: 'info',
    readOnly: true,
  }),
  execute: op({
    request: 'execute',
    response: 'executeResponse',
    result: 'execute',
    policy: 'execute',
    capabilities: ['execute', 'execute.stream'],
    retained: true,
  }),
  'execute.cancel': op({
    request: 'cancelExecution',
    response: 'cancelExecutionResponse',
    result: 'cancelExecution',
    policy: 'execute',
    capabilities: ['execute.cancel'],
    since: '0.2.0',
  }),
  'file.read': op({
    request: 'fileRead',
    response: 'fileReadResponse',
    result: 'fileRead',
    policy: 'file.read',
    readOnly: true,
  }),
  'file.write': op({
    request: 'fileWrite',
    response: 'fileWriteResponse',
    result: 'fileWrite',
    policy: 'file.write',
    retained: true,
  }),
  shutdown: op({
    request: 'shutdown',
    response: 'shutdownResponse',
    result: 'shutdown',
    policy: 'shutdown',
    retained: true,
  }),
  quiesce: op({
    request: 'quiesce',
    response: 'quiesceResponse',
    result: 'quiesce',
    policy: 'quiesce',
    // Hooks run (each up to the agent's hook timeout) before it answers.
    defaultTimeoutMs: 300_000,
    since: '0.2.0',
  }),
  thaw: op({
    request: 'thaw',
    response: 'thawResponse',
    result: 'thaw',
    policy: 'quiesce',
    whileFrozen: true,
    defaultTimeoutMs: 300_000,
    since: '0.2.0',
  }),
  'quiesce.status': op({
    request: 'quiesceStatus',
    response: 'quiesceStatusResponse',
    result: 'quiesceStatus',
    policy: 'quiesce',
    whileFrozen: true,
    since: '0.2.0',
    readOnly: true,
  }),
  'time.sync': op({
    request: 'syncTime',
    response: 'syncTimeResponse',
    result: 'syncTime',
    policy: 'time.sync',
    since: '0.2.0',
  }),
  'password.set': op({
    request: 'setUserPassword',
    response: 'setUserPasswordResponse',
    result: 'setUserPassword',
    policy: 'password.set',
    since: '0.2.0',
  }),
  'fs.info': op({
    request: 'getFsInfo',
    response: 'getFsInfoResponse',
    result: 'getFsInfo',
    policy: 'fs.info',
    since: '0.2.0',
    readOnly: true,
  }),
  // A file's metadata; enabled with file reads.
  'file.stat': op({
    request: 'fileStat',
    response: 'fileStatResponse',
    result: 'fileStat',
    policy: 'file.read',
    capabilities: ['file.stat'],
    since: '0.3.0',
    readOnly: true,
  }),
  // A page of a directory's entries; enabled with file reads.
  'file.list': op({
    request: 'fileList',
    response: 'fileListResponse',
    result: 'fileList',
    policy: 'file.read',
    capabilities: ['file.list'],
    since: '0.3.0',
    readOnly: true,
  }),
  // Directory creation, deletion and renames change the guest: enabled with file writes, and
  // retained so a retried request is answered, not repeated.
  'file.mkdir': op({
    request: 'fileMkdir',
    response: 'fileMkdirResponse',
    result: 'fileMkdir',
    policy: 'file.write',
    capabilities: ['file.mkdir'],
    retained: true,
    since: '0.3.0',
  }),
  'file.delete': op({
    request: 'fileDelete',
    response: 'fileDeleteResponse',
    result: 'fileDelete',
    policy: 'file.write',
    capabilities: ['file.delete'],
    retained: true,
    // A recursive delete of a large tree takes a while.
    defaultTimeoutMs: 300_000,
    since: '0.3.0',
  }),
  'file.rename': op({
    request: 'fileRename',
    response: 'fileRenameResponse',
    result: 'fileRename',
    policy: 'file.write',
    capabilities: ['file.rename'],
    retained: true,
    since: '0.3.0',
  }),
  // Self-update (PROTOCOL.md §10): chunks of the new executable, the commit that verifies and
  // swaps it, the status a host polls afterwards. A commit verifies up to 256 MiB.
  'agent.update': op({
    request: 'agentUpdate',
    response: 'agentUpdateResponse',
    result: 'agentUpdate',
    policy: 'agent.update',
    defaultTimeoutMs: 120_000,
    since: '0.4.0',
  }),
  // Network re-configuration (PROTOCOL.md §11): the configuration as the agent reads it, a safe
  // apply that rolls back unless confirmed, and the confirmation. A retried configure is
  // answered, not applied twice.
  'network.get': op({
    request: 'networkGet',
    response: 'networkGetResponse',
    result: 'networkGet',
    policy: 'network',
    since: '0.5.0',
  }),
  'network.configure': op({
    request: 'networkConfigure',
    response: 'networkConfigureResponse',
    result: 'networkConfigure',
    policy: 'network',
    retained: true,
    // ifdown/ifup with DHCP, netplan apply: each apply command is bounded by the agent's
    // network.command_timeout_ms; a rollback after a failed apply runs them again.
    defaultTimeoutMs: 120_000,
    // The control plane watches the addresses and confirms under the same audited intent.
    companions: ['network.get', 'network.confirm'],
    since: '0.5.0',
  }),
  'network.confirm': op({
    request: 'networkConfirm',
    response: 'networkConfirmResponse',
    result: 'networkConfirm',
    policy: 'network',
    since: '0.5.0',
  }),
  // The OS facts alone, from the agent's cache (what qemu-ga's guest-get-osinfo answers);
  // enabled with info.
  'os.info': op({
    request: 'getOsInfo',
    response: 'getOsInfoResponse',
    result: 'getOsInfo',
    policy: 'info',
    capabilities: ['os.info'],
    since: '0.5.0',
  }),
  // File handles (PROTOCOL.md §6 Files): open once, read many small chunks, close; enabled
  // with file reads. A handle is the agent's, bounded in number and idle time.
  'file.open': op({
    request: 'fileOpen',
    response: 'fileOpenResponse',
    result: 'fileOpen',
    policy: 'file.read',
    capabilities: ['file.handles'],
    since: '0.5.0',
  }),
  'file.handle.read': op({
    request: 'fileHandleRead',
    response: 'fileHandleReadResponse',
    result: 'fileHandleRead',
    policy: 'file.read',
    capabilities: ['file.handles'],
    since: '0.5.0',
  }),
  'file.close': op({
    request: 'fileClose',
    response: 'fileCloseResponse',
    result: 'fileClose',
    policy: 'file.read',
    capabilities: ['file.handles'],
    since: '0.5.0',
  }),
} as const satisfies Record<string, GuestOperationDef>;

type Table = typeof GUEST_OPERATION_TABLE;

/** A guest operation's name. */
export type GuestOperation = keyof Table;
/** The request case of an operation (GuestRequest.operation and AgentPayload). */
export type RequestCaseOf<O extends GuestOperation> = Table[O]['request'];
/** The result case of an operation in a GuestResponse. */
export type ResultCaseOf<O extends GuestOperation> = Table[O]['result'];
/** Every request case an agent serves. */
export type RequestCase = RequestCaseOf<GuestOperation>;
/** Every result case a node daemon answers with. */
export type ResultCase = ResultCaseOf<GuestOperation>;
/** An agent policy name. */
export type PolicyName = Table[GuestOperation]['policy'];

/** The value of a request case (what an operation carries). */
export type RequestOf<C extends RequestCase> = Extract<AgentPayload, { case: C }>['value'];
/** The value of a result case (what an operation answers). */
export type ResultOf<C extends ResultCase> = Extract<GuestResponse['result'], { case: C }>['value'];

/** The operations' names, in table order. */
export const GUEST_OPERATION_NAMES = Object.keys(GUEST_OPERATION_TABLE) as GuestOperation[];

const entries = GUEST_OPERATION_NAMES.map((name) => [name, GUEST_OPERATION_TABLE[name]] as const);

/** The operation a request case belongs to. */
export const OPERATION_OF_REQUEST: ReadonlyMap<string, GuestOperation> = new Map(
  entries.map(([name, def]) => [def.request, name]),
);

/** The result case a node daemon answers for an agent's response case. */
export const RESULT_OF_RESPONSE: ReadonlyMap<string, ResultCase> = new Map(
  entries.map(([, def]) => [def.response, def.result]),
);

/** Request cases whose results the agent retains until acknowledged. */
export const RETAINED_REQUESTS: ReadonlySet<string> = new Set(
  entries.filter(([, def]) => def.retained).map(([, def]) => def.request),
);

/** Request cases a frozen guest still serves. */
export const WHILE_FROZEN_REQUESTS: ReadonlySet<string> = new Set(
  entries.filter(([, def]) => def.whileFrozen).map(([, def]) => def.request),
);

/** The agent policy names, in table order without repeats. */
export const POLICY_NAMES = [...new Set(entries.map(([, def]) => def.policy))] as PolicyName[];

/**
 * The capabilities an agent announces when these policies are enabled, in table order. An agent
 * whose OS cannot serve some operations (request cases in `unserved`) leaves out every
 * capability one of them carries: a host that sees a capability can use all it covers.
 */
export function capabilitiesOf(
  enabled: readonly string[],
  unserved: readonly string[] = [],
): string[] {
  const on = entries.filter(([, def]) => enabled.includes(def.policy));
  const refused = new Set(
    on.filter(([, def]) => unserved.includes(def.request)).flatMap(([, def]) => def.capabilities),
  );
  return [...new Set(on.flatMap(([, def]) => def.capabilities))].filter((c) => !refused.has(c));
}

/**
 * The enabled policy names an agent reports (AgentInfo.capabilities) without those one of whose
 * operations its OS cannot serve (`unserved`: request cases).
 */
export function servedPolicies<P extends string>(
  enabled: readonly P[],
  unserved: readonly string[] = [],
): P[] {
  const refused = new Set<string>(
    entries.filter(([, def]) => unserved.includes(def.request)).map(([, def]) => def.policy),
  );
  return enabled.filter((p) => !refused.has(p));
}

/** The capability an agent must announce for the operation. */
export function capabilityOf(operation: GuestOperation): string {
  return GUEST_OPERATION_TABLE[operation].capabilities[0] ?? operation;
}

/** Whether a node daemon relays `operation` under an intent signed for `intentOperation`. */
export function relayedUnderIntent(intentOperation: string, operation: GuestOperation): boolean {
  return (
    intentOperation === operation ||
    // Executions check their agent with a ping under any intent.
    operation === 'ping' ||
    (isGuestOperation(intentOperation) &&
      (GUEST_OPERATION_TABLE[intentOperation].companions as readonly string[]).includes(operation))
  );
}

/** Whether `name` is an operation of the table. */
export function isGuestOperation(name: string): name is GuestOperation {
  return Object.hasOwn(GUEST_OPERATION_TABLE, name);
}
