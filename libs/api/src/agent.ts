// The agent lifecycle's JSON (issue 19): releases, versions across the fleet, self-updates and
// rollouts.

/** How an agent's self-update ended, as the agent reports it (AgentInfo.last_update). */
export interface AgentUpdateResultView {
  update_id: string;
  from_version: string;
  to_version: string;
  /** ok, rolled_back or pending. */
  result: string;
  reason: string;
  at: string | null;
}

/** One executable of a release. */
export interface AgentArtifactView {
  target: string;
  file: string;
  sha256: string;
  size: number;
  /** Its release signature verifies with a key of LQ_AGENT_RELEASE_KEYS (true when none is set). */
  verified: boolean;
}

/** One release of GET /api/agent/releases. */
export interface AgentReleaseView {
  version: string;
  commit: string;
  /** Signed executables; a release without a manifest has none and cannot be rolled out. */
  artifacts: AgentArtifactView[];
  /** Every executable's signature verified (and there is at least one). */
  updatable: boolean;
}

/** GET /api/agent/releases */
export interface AgentReleaseListView {
  /** The newest updatable release, null when none. */
  latest: string | null;
  releases: AgentReleaseView[];
}

/** GET /api/agent/versions: the fleet by agent version. */
export interface AgentVersionCountsView {
  latest: string | null;
  versions: Array<{ version: string; target: string; vms: number; outdated: boolean }>;
}

/** POST /api/vms/:id/agent/update */
export interface AgentUpdateBody {
  version: string;
  /** Install a version that is not newer than the running one. */
  allow_downgrade?: boolean;
}

/** The answer of POST /api/vms/:id/agent/update (its audited outcome says the same). */
export interface AgentUpdateView {
  vm_id: string;
  update_id: string;
  /** ready (the new agent answers), rolled_back (the old one is back) or failed. */
  state: 'ready' | 'rolled_back' | 'failed';
  from_version: string;
  to_version: string;
  /** The agent's version once it ended. */
  version: string;
  target: string;
  reason: string;
}

/** POST /api/agent/rollouts */
export interface AgentRolloutBody {
  version: string;
  target: { vm_ids?: string[]; project?: string; labels?: string | Record<string, string> };
  /** VMs updated first, one at a time; the rest waits until they are all ready. Default 1. */
  canary?: number;
  /** VMs updated at once after the canaries: a number or a percentage. Default 5. */
  max_concurrency?: number | string;
  /** The rollout stops once more than this many VMs failed or rolled back. Default 0. */
  max_errors?: number | string;
  allow_downgrade?: boolean;
}

/** Where one VM of a rollout is. */
export type AgentRolloutStepState =
  | 'queued'
  | 'denied'
  | 'skipped'
  | 'sent'
  | 'verified'
  | 'restarted'
  | 'ready'
  | 'rolled_back'
  | 'failed';

/** GET /api/agent/rollouts/:id */
export interface AgentRolloutView {
  id: string;
  actor: string;
  version: string;
  status: 'running' | 'succeeded' | 'failed' | 'stopped';
  target: Record<string, unknown>;
  canary: number;
  max_concurrency: number;
  max_errors: number;
  errors: number;
  created_at: string;
  ended_at: string | null;
  summary: Record<string, number>;
  vms: Array<{
    vm_id: string;
    canary: boolean;
    state: AgentRolloutStepState;
    from_version: string | null;
    to_version: string | null;
    error: string | null;
    updated_at: string;
  }>;
}

/** GET /api/agent/rollouts */
export interface AgentRolloutListView {
  rollouts: Array<Omit<AgentRolloutView, 'vms'>>;
}
