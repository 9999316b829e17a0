import { spawnService, type ServiceProcess } from './service-process.js';
import { TEST_CONTROL_PLANE_KEYS } from './signing.js';

export interface RunningNodeDaemon extends ServiceProcess {
  nodeId: string;
}

/** Starts the real node daemon (the tsc build) as its own process. */
export async function startNodeDaemon(options: {
  nodeId: string;
  natsUrl: string;
  channelDirs: string[];
  env?: Record<string, string>;
}): Promise<RunningNodeDaemon> {
  const service = await spawnService({
    main: 'dist/tsc/apps/node-daemon/src/main.js',
    env: {
      LQ_NODE_ID: options.nodeId,
      NATS_URL: options.natsUrl,
      LQ_CHANNEL_DIRS: options.channelDirs.join(','),
      LQ_HEARTBEAT_INTERVAL_MS: '1000',
      LQ_RESCAN_INTERVAL_MS: '500',
      LQ_CONTROL_PLANE_KEYS: TEST_CONTROL_PLANE_KEYS,
      ...options.env,
    },
    readyText: ' up: ',
    // Generous: a busy shared machine starts a Node process slowly; a broken one never starts.
    timeoutMs: 60_000,
  });
  return { ...service, nodeId: options.nodeId };
}
