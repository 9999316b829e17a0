import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { AgentReleaseCatalog } from './agent-release-catalog.js';
import { AgentReleases } from './agent-releases.js';

/** The agent downloads' providers: where the release folders are (LQ_AGENT_DOWNLOADS_DIR). */
export const DOWNLOADS_PROVIDERS = [
  {
    provide: AgentReleases,
    inject: [CONTROL_PLANE_CONFIG],
    useFactory: (config: ControlPlaneConfig) => new AgentReleases(config.files.agentDownloadsDir),
  },
  AgentReleaseCatalog,
];
