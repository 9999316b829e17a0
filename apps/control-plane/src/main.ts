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
    return {
      upMessage: `REST and Connect on ${cp.httpUrl} (docs ${cp.httpUrl}/api/docs), gRPC on port ${cp.grpcPort}`,
      close: () => cp.close(),
    };
  },
  new Logger('control-plane'),
);
