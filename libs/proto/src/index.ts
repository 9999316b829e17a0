// The one entry point of @lq/proto: generated schemas, the frame codec, the operation table,
// NATS subjects. The host-side runtime (agent client, file transfer, NATS requests, signing)
// is @lq/host.
export * from './gen/limiquantix/agent/v1/agent_pb.js';
export * from './framing/crc32.js';
export * from './framing/frame-codec.js';
export * from './framing/message-codec.js';
export * from './gen/limiquantix/node/v1/node_daemon_pb.js';
export * from './operations.js';
export * from './nats/subjects.js';
export * from './nats/heartbeat-header.js';
export * from './policy/run-as-env.js';
export * from './gen/limiquantix/compute/v1/vm_service_pb.js';
export * as reflectionV1 from './gen/grpc/reflection/v1/reflection_pb.js';
export * as reflectionV1alpha from './gen/grpc/reflection/v1alpha/reflection_pb.js';
export * from './release/release-signature.js';
export * from './release/versions.js';
export * from './policy/network-config.js';
