// @lq/host: the host side of the agent protocol, for the node daemon, the control plane and the
// host tools (agentctl, benches): the agent channel client, chunked file transfer, guest
// requests over NATS and their signatures. The guest agent never imports it.
export * from './agent-client.js';
export * from './file-transfer.js';
export * from './guest-request.js';
export * from './guest-signature.js';
export * from './reply-parts.js';
