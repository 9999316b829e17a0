import { describe, expect, it } from '@jest/globals';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { NodeHeartbeatSchema } from '@lq/proto';
import type { NatsService } from './nats.service.js';
import { NodeDaemonWatch, type DaemonChange } from './node-daemon.watch.js';

const beat = (nodeId: string, startedMs: number, natsReconnects: number) =>
  toBinary(
    NodeHeartbeatSchema,
    create(NodeHeartbeatSchema, { nodeId, startedAt: timestampFromMs(startedMs), natsReconnects }),
  );

describe('NodeDaemonWatch', () => {
  const watch = () => {
    const w = new NodeDaemonWatch({} as NatsService);
    const seen: string[] = [];
    w.onAnyNode((node, change) => seen.push(`${node}:${change}`));
    const n1: DaemonChange[] = [];
    const off = w.onNode('n1', (c) => n1.push(c));
    return { w, seen, n1, off };
  };

  it('should name a restart and a reconnection of a node it has seen, and nothing else', () => {
    const { w, seen, n1 } = watch();
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 1000, 0)); // first seen: no change
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 1000, 0));
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 1000, 1));
    w.heartbeat('lq.v1.node.n2.heartbeat', beat('n2', 5000, 7));
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 2000, 0));
    w.heartbeat('lq.v1.node.n2.heartbeat', beat('n2', 5000, 8));
    expect(seen).toEqual(['n1:reconnected', 'n1:restarted', 'n2:reconnected']);
    expect(n1).toEqual(['reconnected', 'restarted']);
  });

  it('should ignore a heartbeat naming another node than its subject, and bytes that are none', () => {
    const { w, seen } = watch();
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 1000, 0));
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n9', 1000, 5));
    w.heartbeat('lq.v1.node.n1.heartbeat', new Uint8Array([0x0a, 0x50, 0x41]));
    expect(seen).toEqual([]);
  });

  it('should stop calling a node listener once it is removed', () => {
    const { w, n1, off } = watch();
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 1000, 0));
    off();
    w.heartbeat('lq.v1.node.n1.heartbeat', beat('n1', 1000, 1));
    expect(n1).toEqual([]);
  });
});
