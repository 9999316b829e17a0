// Simulated VMs for tests: real guest agent processes on `<dir>/<vmId>.sock`, as a node daemon
// finds them in its channel directory. The logic is shared with `npm run sim` (scripts/sim.mjs).
import {
  startSimVms as startSimVmsCore,
  type AgentConfigPatch,
  type SimEvent,
  type SimVm,
  type SimVms,
} from '../../scripts/sim-core.mjs';

export { AGENT_BUNDLE, SimError } from '../../scripts/sim-core.mjs';
export type { AgentConfigPatch, SimEvent, SimVm, SimVms };

export interface SimVmsOptions {
  /** Channel directory (created if missing); VM i serves `<dir>/<prefix><i>.sock`. */
  dir: string;
  /** 1..2000. */
  count: number;
  /** Default 'vm-'. */
  prefix?: string;
  /** Deep-merged into every agent config (arrays replace), or one patch per VM. */
  config?:
    | AgentConfigPatch
    | ((vm: { id: string; index: number; workDir: string }) => AgentConfigPatch | undefined);
  /** Restart an agent that dies on its own (not through kill/restart/stop). Default false. */
  restartOnExit?: boolean;
  /** Agents per process (default 1); above 1, kill and restart of one VM are refused. */
  agentsPerProcess?: number;
  /** Node.js (default) or the path of a `bun` binary, the shipped agent's runtime. */
  runtime?: string;
  /** Lifecycle events and agent output lines. */
  onEvent?: (event: SimEvent) => void;
}

/**
 * Starts `count` agents and resolves once every socket exists. Each VM has a work dir
 * `<dir>/.sim/<id>/` (a file-transfer root, beside /tmp) whose shutdown.log records the
 * shutdown commands the agent ran instead of shutting anything down. Call stop() in afterAll.
 */
export function startSimVms(options: SimVmsOptions): Promise<SimVms> {
  return startSimVmsCore(options);
}
