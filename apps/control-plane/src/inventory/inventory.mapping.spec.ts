import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AgentState, VmAgentStatusSchema } from '@lq/proto';
import {
  agentStateName,
  agentStateOfEventKind,
  idsOfSubject,
  int4,
  nodeViewFromRecord,
  VM_NAME_MAX_CHARS,
  vmFromRecord,
  vmName,
  vmUpsertRows,
} from './inventory.mapping.js';

describe('inventory mapping', () => {
  it('should name every agent state when mapping the enum', () => {
    expect(
      [
        AgentState.READY,
        AgentState.CONNECTING,
        AgentState.DISCONNECTED,
        AgentState.UNSPECIFIED,
      ].map(agentStateName),
    ).toEqual(['ready', 'connecting', 'disconnected', 'disconnected']);
    expect(agentStateName(99 as AgentState)).toBe('disconnected');
  });

  it('should map event kinds to states when an event carries no status', () => {
    expect(['ready', 'connected', 'disconnected', 'other'].map(agentStateOfEventKind)).toEqual([
      'ready',
      'connecting',
      'disconnected',
      undefined,
    ]);
  });

  it('should omit os when the status carries no agent facts', () => {
    const [row] = vmUpsertRows('n1', [
      create(VmAgentStatusSchema, { vmId: 'vm-1', state: AgentState.CONNECTING }),
    ]);

    expect(row).toEqual({
      id: 'vm-1',
      node_id: 'n1',
      name: '',
      agent_state: 'connecting',
      agent_version: '',
      agent_target: '',
      capabilities: [],
      hostname: '',
      interfaces: [],
      connected_since: undefined,
      last_seen_at: undefined,
    });
    expect(JSON.parse(JSON.stringify(row))).not.toHaveProperty('os');
    expect(JSON.parse(JSON.stringify(row))).not.toHaveProperty('agent_last_update');
  });

  it('should keep the agent build target and last update result of AgentReady', () => {
    const [row] = vmUpsertRows('n1', [
      create(VmAgentStatusSchema, {
        vmId: 'vm-1',
        state: AgentState.READY,
        info: {
          agentVersion: '0.2.0',
          agentTarget: 'linux-amd64',
          lastUpdate: { updateId: 'u1', fromVersion: '0.1.0', toVersion: '0.2.0', result: 'ok' },
        },
      }),
    ]);
    expect(row?.agent_target).toBe('linux-amd64');
    expect(row?.agent_last_update).toEqual({
      updateId: 'u1',
      fromVersion: '0.1.0',
      toVersion: '0.2.0',
      result: 'ok',
    });
  });

  it('should store a name without control characters and at most VM_NAME_MAX_CHARS', () => {
    expect(vmName('dup')).toBe('dup');
    expect(vmName('a\u0000b\nc\u009b')).toBe('abc');
    expect(vmName('é'.repeat(VM_NAME_MAX_CHARS + 10))).toBe('é'.repeat(VM_NAME_MAX_CHARS));
  });

  it('should keep one row per VM in id order when a heartbeat repeats or shuffles VMs', () => {
    const s = (vmId: string, agentVersion: string) =>
      create(VmAgentStatusSchema, { vmId, agentVersion, info: { hostname: vmId } });

    const rows = vmUpsertRows('n1', [s('b', '1'), s('a', '1'), s('b', '2')]);

    expect(rows.map((r) => [r.id, r.agent_version])).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
    expect(rows[0]?.os).toEqual({});
  });

  it('should fall back to the facts when the status has no version or capabilities', () => {
    const [row] = vmUpsertRows('n1', [
      create(VmAgentStatusSchema, {
        vmId: 'vm-1',
        lastSeen: timestampFromDate(new Date('2026-01-01T00:00:00Z')),
        info: { agentVersion: '2.0.0', capabilities: ['ping'], os: { id: 'debian' } },
      }),
    ]);

    expect([row?.agent_version, row?.capabilities, row?.os, row?.last_seen_at]).toEqual([
      '2.0.0',
      ['ping'],
      { id: 'debian' },
      '2026-01-01T00:00:00.000Z',
    ]);
  });

  it('should clamp a uint32 when it exceeds a PostgreSQL integer', () => {
    expect([int4(4_294_967_295), int4(5.7), int4(-1)]).toEqual([2_147_483_647, 5, 0]);
  });

  it('should build the VM message when reading a stored row', () => {
    const vm = vmFromRecord({
      id: 'vm-1',
      node_id: 'n1',
      agent_state: 'gone',
      agent_version: '1.0.0',
      capabilities: ['ping'],
      hostname: 'h',
      os: { id: 'debian', futureField: 1 },
      interfaces: [{ name: 'eth0' }],
      last_seen_at: new Date('2026-01-01T00:00:00Z'),
      telemetry: { cpuCount: 2, memory: { totalBytes: '10' } },
      telemetry_at: null,
    });

    expect(vm.os?.id).toBe('debian');
    expect(vm.interfaces[0]?.name).toBe('eth0');
    expect(vm.telemetry?.memory?.totalBytes).toBe(10n);
    expect(vm.telemetryAt).toBeUndefined();
    expect(vm.lastSeen?.seconds).toBe(BigInt(Date.UTC(2026, 0, 1) / 1000));
  });

  it('should call a node stale when its heartbeat is older than the limit', () => {
    const r = {
      id: 'n1',
      hostname: 'h',
      daemon_version: 'v',
      last_heartbeat_at: new Date(1000),
      file_chunk_max_bytes: 1,
      vm_count: 0,
    };

    expect(nodeViewFromRecord(r, 1000 + 15_000, 15_000).stale).toBe(false);
    expect(nodeViewFromRecord(r, 1001 + 15_000, 15_000).stale).toBe(true);
  });

  it('should read node and VM ids when the subject is one of PROTOCOL.md §9', () => {
    expect(idsOfSubject('lq.v1.node.n1.heartbeat')).toEqual({ nodeId: 'n1' });
    expect(idsOfSubject('lq.v1.events.n1.vm-1.ready')).toEqual({ nodeId: 'n1', vmId: 'vm-1' });
    expect(idsOfSubject('lq.v1.telemetry.n1.vm-1')).toEqual({ nodeId: 'n1', vmId: 'vm-1' });
    expect(idsOfSubject('lq.v1.node.n1.guest.ping')).toEqual({});
    expect(idsOfSubject('lq.v2.telemetry.n1.vm-1')).toEqual({});
  });
});
