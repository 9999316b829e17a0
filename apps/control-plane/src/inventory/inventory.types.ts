/** Where a VM's guest operations go, as the inventory knows it. */
export interface VmLocation {
  nodeId: string;
  /** The project whose role bindings decide who may operate the VM. */
  projectId: string;
  /** Largest file chunk the node's daemon relays. */
  fileChunkMaxBytes: number;
  agentState: string;
  /** The agent's version and build target as last reported ('' when unknown). */
  agentVersion?: string;
  agentTarget?: string;
}

/** A node as the API shows it. */
export interface NodeView {
  id: string;
  hostname: string;
  daemonVersion: string;
  lastHeartbeatAt: string;
  stale: boolean;
  vmCount: number;
  fileChunkMaxBytes: number;
}
