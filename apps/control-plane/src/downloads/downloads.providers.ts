import { AgentReleases } from './agent-releases.js';

/** The agent downloads' providers: where the release folders are. */
export const DOWNLOADS_PROVIDERS = [
  { provide: AgentReleases, useFactory: () => new AgentReleases() },
];
