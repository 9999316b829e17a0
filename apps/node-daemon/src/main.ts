// The node daemon: `node dist/tsc/apps/node-daemon/src/main.js` with its configuration in
// environment variables (README: configuration reference). One per hypervisor host.
import { Logger } from '@nestjs/common';
import { ConfigError, parseNodeDaemonEnv } from './config/env.schema.js';
import { startNodeDaemon } from './daemon.js';

async function main(): Promise<void> {
  let config;
  try {
    config = parseNodeDaemonEnv(process.env);
  } catch (err) {
    process.stderr.write(
      `node-daemon: ${err instanceof ConfigError ? err.message : String(err)}\n`,
    );
    process.exit(2);
  }
  const app = await startNodeDaemon(config);
  const log = new Logger('node-daemon');
  log.log(`node ${config.nodeId} up: watching ${config.channelDirs.join(', ')}`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      return;
    }
    stopping = true;
    log.log(`${signal}: draining`);
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error(`shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`node-daemon: cannot start: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
