import { describe, expect, it } from '@jest/globals';
import { AgentMessageSchema } from './gen/limiquantix/agent/v1/agent_pb.js';
import {
  GuestRequestSchema,
  GuestResponseSchema,
} from './gen/limiquantix/node/v1/node_daemon_pb.js';
import {
  GUEST_OPERATION_NAMES,
  GUEST_OPERATION_TABLE,
  capabilitiesOf,
  servedPolicies,
  capabilityOf,
  isGuestOperation,
  relayedUnderIntent,
} from './operations.js';

function oneofCases(
  schema: typeof AgentMessageSchema | typeof GuestRequestSchema | typeof GuestResponseSchema,
  name: string,
): string[] {
  const oneof = schema.oneofs.find((o) => o.name === name);
  if (!oneof) {
    throw new Error(`no oneof ${name}`);
  }
  return oneof.fields.map((f) => f.localName);
}

describe('the operation table', () => {
  const defs = GUEST_OPERATION_NAMES.map((n) => GUEST_OPERATION_TABLE[n]);
  // Agent payloads that are not a guest operation's request or response.
  const NOT_OPERATIONS = [
    'sync',
    'syncResponse',
    'resultAck',
    'error',
    'telemetry',
    'agentReady',
    'execOutput',
  ];

  it('should name every request and response of the agent protocol exactly once', () => {
    const payloads = oneofCases(AgentMessageSchema, 'payload');
    const named = [
      ...defs.map((d) => d.request),
      ...defs.map((d) => d.response),
      ...NOT_OPERATIONS,
    ];
    expect([...named].sort()).toEqual([...payloads].sort());
    expect(new Set(named).size).toBe(named.length);
  });

  it('should match what a node daemon carries and answers', () => {
    expect(defs.map((d) => d.request).sort()).toEqual(
      oneofCases(GuestRequestSchema, 'operation').sort(),
    );
    expect(defs.map((d) => d.result).sort()).toEqual(
      oneofCases(GuestResponseSchema, 'result')
        .filter((c) => c !== 'error')
        .sort(),
    );
  });

  it('should derive capabilities from the enabled policies', () => {
    expect(capabilitiesOf(['execute'])).toEqual(['execute', 'execute.stream', 'execute.cancel']);
    expect(capabilitiesOf(['quiesce'])).toEqual(['quiesce']);
    expect(capabilityOf('thaw')).toBe('quiesce');
    expect(capabilityOf('execute.cancel')).toBe('execute.cancel');
  });

  it('should leave out every capability an operation the OS cannot serve carries', () => {
    const all = ['execute', 'quiesce', 'file.read', 'file.write', 'network', 'agent.update'];
    const windows = capabilitiesOf(all, ['quiesce', 'thaw', 'networkConfigure', 'agentUpdate']);
    expect(windows).toEqual(
      expect.arrayContaining(['execute', 'file.read', 'file.write', 'file.mkdir', 'file.list']),
    );
    // quiesce.status is served, but shares the capability `quiesce` with quiesce and thaw.
    expect(windows).not.toContain('quiesce');
    expect(windows).not.toContain('network');
    expect(windows).not.toContain('agent.update');
    expect(capabilitiesOf(all, [])).toEqual(capabilitiesOf(all));
    expect(servedPolicies(all, ['quiesce', 'networkConfirm'])).toEqual([
      'execute',
      'file.read',
      'file.write',
      'agent.update',
    ]);
    expect(servedPolicies(all)).toEqual(all);
  });

  it('should relay only the intent operation itself, ping, and its companions under it', () => {
    expect(relayedUnderIntent('network.configure', 'network.configure')).toBe(true);
    expect(relayedUnderIntent('network.configure', 'network.get')).toBe(true);
    expect(relayedUnderIntent('network.configure', 'network.confirm')).toBe(true);
    expect(relayedUnderIntent('network.configure', 'ping')).toBe(true);
    expect(relayedUnderIntent('network.configure', 'execute')).toBe(false);
    // Companions are one-way: a read's intent carries no apply.
    expect(relayedUnderIntent('network.get', 'network.configure')).toBe(false);
    expect(relayedUnderIntent('network.confirm', 'network.get')).toBe(false);
    expect(relayedUnderIntent('not-an-operation', 'network.get')).toBe(false);
    for (const d of defs) {
      for (const c of d.companions) {
        expect(isGuestOperation(c)).toBe(true);
      }
    }
  });
});
