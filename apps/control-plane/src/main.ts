// The control plane: `node dist/tsc/apps/control-plane/src/main.js`, configured by environment
// variables (README: configuration reference). Stateless; run several behind a load balancer.
import { Logger } from '@nestjs/common';
import { runService } from '@lq/runtime';
import { parseControlPlaneEnv } from './config/env.schema.js';
import { startControlPlane } from './app.js';

runService(
  'control-plane',
  parseControlPlaneEnv,
  async (config) => {
    const cp = await startControlPlane(config);
    if (cp.generatedAdminKey) {
      // Printed once: only its hash is stored. LQ_ADMIN_TOKEN fixes it instead.
      process.stdout.write(
        `\n  Bootstrap admin API key (shown once, store it now):\n    ${cp.generatedAdminKey}\n\n`,
      );
    }
    return {
      upMessage: `REST and Connect on ${cp.httpUrl} (docs ${cp.httpUrl}/api/docs), gRPC on port ${cp.grpcPort}`,
      close: () => cp.close(),
    };
  },
  new Logger('control-plane'),
);
