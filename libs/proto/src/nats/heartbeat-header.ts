import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { NodeHeartbeatSchema } from '../gen/limiquantix/node/v1/node_daemon_pb.js';

/**
 * What a replica needs of every node's heartbeat to notice that its daemon restarted or that its
 * NATS connection came back (requests in flight to it may have been lost).
 */
export interface HeartbeatHeader {
  nodeId: string;
  /** NodeHeartbeat.started_at in milliseconds; undefined when the daemon sent none. */
  startedAtMs: number | undefined;
  /** NodeHeartbeat.nats_reconnects: 0 from daemons before 0.6.0. */
  natsReconnects: number;
}

// Field numbers of NodeHeartbeat (node_daemon.proto) and google.protobuf.Timestamp, from the
// generated schemas so that they cannot drift from the proto.
const NODE_ID = NodeHeartbeatSchema.field.nodeId.number;
const STARTED_AT = NodeHeartbeatSchema.field.startedAt.number;
const NATS_RECONNECTS = NodeHeartbeatSchema.field.natsReconnects.number;
const SECONDS = TimestampSchema.field.seconds.number;
const NANOS = TimestampSchema.field.nanos.number;

/**
 * NodeHeartbeat's node_id, started_at and nats_reconnects, read without decoding the rest: a heartbeat carries
 * every VM of its node with its agent's status and info, which every replica would otherwise
 * decode in full once a second per node only to compare one timestamp (the inventory, which
 * needs all of it, decodes it once per heartbeat in one replica of the queue group). The other
 * fields are skipped by their length. Throws on bytes that are not a protobuf message.
 */
export function readHeartbeatHeader(data: Uint8Array): HeartbeatHeader {
  const r = new BinaryReader(data);
  let nodeId = '';
  let startedAtMs: number | undefined;
  let natsReconnects = 0;
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === NODE_ID && wire === WireType.LengthDelimited) {
      nodeId = r.string();
    } else if (field === STARTED_AT && wire === WireType.LengthDelimited) {
      startedAtMs = timestampMs(new BinaryReader(r.bytes()));
    } else if (field === NATS_RECONNECTS && wire === WireType.Varint) {
      natsReconnects = r.uint32();
    } else {
      r.skip(wire, field);
    }
  }
  return { nodeId, startedAtMs, natsReconnects };
}

function timestampMs(r: BinaryReader): number {
  let seconds = 0;
  let nanos = 0;
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === SECONDS && wire === WireType.Varint) {
      seconds = Number(r.int64());
    } else if (field === NANOS && wire === WireType.Varint) {
      nanos = r.int32();
    } else {
      r.skip(wire, field);
    }
  }
  return seconds * 1000 + Math.floor(nanos / 1e6);
}
