// The agent's version and the protocol version it speaks: a leaf, so that the start-up path
// (main.ts, early-responder.ts) names them without loading the agent.
import { BUILD_VERSION } from './build-info.js';

export const AGENT_VERSION = BUILD_VERSION;
export const PROTOCOL_VERSION = 1;
