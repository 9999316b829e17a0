// @lq/proto/wire: the parts of @lq/proto that build no protobuf registry (the frame codec, its
// CRC, the operation table). Loading @lq/proto itself decodes every generated file descriptor,
// tens of milliseconds before a guest agent could answer anything; the agent's start-up path
// (apps/guest-agent/src/early-responder.ts) imports only this.
export * from './framing/crc32.js';
export * from './framing/frame-codec.js';
export * from './operations.js';
