import { describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs, timestampMs } from '@bufbuild/protobuf/wkt';
import { NodeHeartbeatSchema, VmAgentStatusSchema } from '../index.js';
import { readHeartbeatHeader } from './heartbeat-header.js';

describe('readHeartbeatHeader', () => {
  it('should read node_id, started_at and nats_reconnects as the full decode does, skipping the VMs', () => {
    const hb = create(NodeHeartbeatSchema, {
      nodeId: 'node-7',
      hostname: 'h',
      daemonVersion: '1.2.3',
      startedAt: timestampFromMs(1_764_900_000_123),
      timestamp: timestampFromMs(1_764_900_005_000),
      vms: Array.from({ length: 50 }, (_, i) =>
        create(VmAgentStatusSchema, { vmId: `vm-${i}`, name: `n${i}`, capabilities: ['exec'] }),
      ),
      fileChunkMaxBytes: 512 * 1024,
      natsReconnects: 3,
    });
    expect(readHeartbeatHeader(toBinary(NodeHeartbeatSchema, hb))).toEqual({
      nodeId: 'node-7',
      startedAtMs: timestampMs(hb.startedAt!),
      natsReconnects: 3,
    });
  });

  it('should say when started_at is missing', () => {
    const hb = create(NodeHeartbeatSchema, { nodeId: 'n1' });
    expect(readHeartbeatHeader(toBinary(NodeHeartbeatSchema, hb))).toEqual({
      nodeId: 'n1',
      startedAtMs: undefined,
      natsReconnects: 0,
    });
  });

  it('should throw on bytes that are not a message', () => {
    expect(() => readHeartbeatHeader(new Uint8Array([0x0a, 0x50, 0x41]))).toThrow();
  });
});
