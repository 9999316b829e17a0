import { connectBinding } from '../connect-binding.js';
import type { GuestOperationSpec } from '../guest-operation.js';

export interface PingInput {
  timeoutSeconds?: number;
}

export interface PingResult {
  agentVersion: string;
  uptimeSeconds: number;
  /** The round trip through the node daemon to the agent and back. */
  latencyMs: number;
}

/** A round trip to the VM's agent (vm.read). */
export const PING: GuestOperationSpec<PingInput, PingResult> = {
  name: 'ping',
  permission: 'vm.read',
  prepare: (input, env) => {
    const timeoutMs = env.timeoutMs(input.timeoutSeconds);
    return {
      params: {},
      dispatch: async (d) => {
        const started = performance.now();
        const pong = await d.send('ping', { case: 'ping', value: {} }, timeoutMs);
        return {
          agentVersion: pong.agentVersion,
          uptimeSeconds: pong.uptimeSeconds,
          latencyMs: performance.now() - started,
        };
      },
      outcome: () => ({ status: 'ok' }),
    };
  },
  connect: connectBinding({
    method: 'pingAgent',
    input: (req) => ({
      vmId: req.vmId,
      input: { timeoutSeconds: req.timeoutSeconds || undefined },
    }),
    output: (r, req) => ({ vmId: req.vmId, ...r }),
  }),
};
