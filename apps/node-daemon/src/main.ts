// The node daemon: `node dist/tsc/apps/node-daemon/src/main.js` with its configuration in
// environment variables (README: configuration reference). One per hypervisor host.
import { Logger } from '@nestjs/common';
import { runService } from '@lq/runtime';
import { parseNodeDaemonEnv } from './config/env.schema.js';
import { startNodeDaemon } from './daemon.js';

runService(
  'node-daemon',
  parseNodeDaemonEnv,
  async (config) => {
    const app = await startNodeDaemon(config);
    return {
      upMessage: `node ${config.nodeId}, watching ${config.channelDirs.join(', ')}`,
      close: () => app.close(),
    };
  },
  new Logger('node-daemon'),
);
