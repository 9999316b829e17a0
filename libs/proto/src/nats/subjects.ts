// NATS subjects of the platform (PROTOCOL.md §9). Hierarchical, so permissions can be granted
// per node: a node daemon subscribes to lq.v1.node.<its id>.> and publishes only its own
// heartbeat, events, telemetry and execution output.

import { isGuestOperation, type GuestOperation } from '../operations.js';

export type { GuestOperation };

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

/** Node and VM ids become subject tokens: no dots, wildcards or spaces. */
export function isSubjectToken(id: string): boolean {
  return TOKEN.test(id);
}

export const subjects = {
  guest: (nodeId: string, op: GuestOperation) => `lq.v1.node.${nodeId}.guest.${op}`,
  guestWildcard: (nodeId: string) => `lq.v1.node.${nodeId}.guest.>`,
  heartbeat: (nodeId: string) => `lq.v1.node.${nodeId}.heartbeat`,
  allHeartbeats: 'lq.v1.node.*.heartbeat',
  event: (nodeId: string, vmId: string, kind: string) => `lq.v1.events.${nodeId}.${vmId}.${kind}`,
  allEvents: 'lq.v1.events.>',
  telemetry: (nodeId: string, vmId: string) => `lq.v1.telemetry.${nodeId}.${vmId}`,
  allTelemetry: 'lq.v1.telemetry.>',
  /**
   * A streamed execution's output chunks (ExecOutputEvent), published by the node that runs it:
   * under that node's subjects, so NATS lets no other node publish them.
   */
  execOutput: (nodeId: string, executionId: string) =>
    `lq.v1.node.${nodeId}.exec.${executionId}.output`,
  allExecOutput: 'lq.v1.node.*.exec.*.output',
};

/** The operation named by a guest subject of this node, or undefined. */
export function guestOperationOf(subject: string, nodeId: string): GuestOperation | undefined {
  const prefix = `lq.v1.node.${nodeId}.guest.`;
  if (!subject.startsWith(prefix)) {
    return undefined;
  }
  const op = subject.slice(prefix.length);
  return isGuestOperation(op) ? op : undefined;
}
