import { create, fromBinary } from '@bufbuild/protobuf';
import {
  AgentInfoSchema,
  AgentLimitsSchema,
  NodeHeartbeatSchema,
  type NodeHeartbeat,
} from '@lq/proto';
import { AgentRegistryService, type VmAgent } from '../agents/agent-registry.service.js';
import type { NodeDaemonConfig } from '../config/env.schema.js';
import type { NatsService } from '../nats/nats.service.js';
import type { GuestRelayService } from '../relay/guest-relay.service.js';
import { InventoryPublisherService } from './inventory-publisher.service.js';

function vm(id: string, client: Partial<VmAgent['client']>): VmAgent {
  return { vmId: id, name: '', channelPath: `/run/${id}.sock`, client } as VmAgent;
}

/** Without the header's own send time and order, which differ between two encodings. */
function withoutTime(hb: NodeHeartbeat) {
  return { ...hb, timestamp: undefined, stateSeq: 0n };
}

describe('InventoryPublisherService.encodeHeartbeat', () => {
  const vms = [
    vm('vm-1', {
      state: 'ready',
      agentVersion: '1.2.3',
      protocolVersion: 2,
      capabilities: ['exec', 'file.read'],
      limits: create(AgentLimitsSchema, { maxFrameBytes: 1024 }),
      info: create(AgentInfoSchema, { hostname: 'guest-1' }),
      connectedSince: new Date(1_700_000_000_123),
      lastSeen: new Date(1_700_000_005_000),
    }),
    vm('vm-2', { state: 'disconnected', capabilities: [] }),
  ];
  const registry = new AgentRegistryService({} as NodeDaemonConfig);
  registry.all = () => vms;
  const publisher = new InventoryPublisherService(
    { nodeId: 'node-1' } as NodeDaemonConfig,
    {} as NatsService,
    registry,
    { fileChunkMaxBytes: 4096 } as GuestRelayService,
  );

  it('decodes to what heartbeat() holds, and follows a VM whose status changed', () => {
    const first = fromBinary(NodeHeartbeatSchema, publisher.encodeHeartbeat());
    expect(withoutTime(first)).toEqual(withoutTime(publisher.heartbeat()));
    expect(first.vms[0]!.lastSeen).toBeDefined();
    expect(first.vms[1]!.lastSeen).toBeUndefined();

    // last_seen moves on its own; a new state re-encodes the VM's status.
    Object.assign(vms[0]!.client, { lastSeen: new Date(1_700_000_009_250) });
    Object.assign(vms[1]!.client, { state: 'ready', agentVersion: '1.2.4' });
    const second = fromBinary(NodeHeartbeatSchema, publisher.encodeHeartbeat());
    expect(withoutTime(second)).toEqual(withoutTime(publisher.heartbeat()));
    expect(second.vms[1]!.agentVersion).toBe('1.2.4');
  });

  it('orders its heartbeats: each state_seq larger than the last, near the wall clock in µs', () => {
    const seqs = Array.from(
      { length: 1000 },
      () => fromBinary(NodeHeartbeatSchema, publisher.encodeHeartbeat()).stateSeq,
    );
    expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!)).toBe(true);
    const micros = BigInt(Date.now()) * 1000n;
    expect(seqs[0]! > micros - 60_000_000n && seqs[0]! < micros + 60_000_000n).toBe(true);
  });
});
