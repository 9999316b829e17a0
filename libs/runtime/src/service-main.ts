// The entry-point shape of the long-running tiers: validate config (exit 2 naming the
// variable), start, log one "up" line, and on SIGTERM/SIGINT stop cleanly (exit 0) exactly once.
import { ConfigError } from './env.js';

export interface StartedService {
  /** The line logged once the service is up (tests wait for " up: "). */
  upMessage: string;
  close(): Promise<void>;
}

export function runService<C>(
  name: string,
  parse: (env: NodeJS.ProcessEnv) => C,
  start: (config: C) => Promise<StartedService>,
  log: { log(message: string): void; error(message: string): void },
): void {
  let config: C;
  try {
    config = parse(process.env);
  } catch (err) {
    process.stderr.write(`${name}: ${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
  start(config).then(
    (service) => {
      log.log(`${name} up: ${service.upMessage}`);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          return;
        }
        stopping = true;
        log.log(`${signal}: draining`);
        service.close().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error(`shutdown failed: ${String(err)}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    },
    (err: unknown) => {
      process.stderr.write(`${name}: cannot start: ${(err as Error)?.message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
