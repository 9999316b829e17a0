import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository root: the nearest folder above this module with a package.json (this file is
// also bundled into bench/, so a fixed relative path would not do).
function findRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'apps'))) {
      return dir;
    }
  }
  return process.cwd();
}

const ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const NODE_DAEMON_MAIN = join(ROOT, 'dist/tsc/apps/node-daemon/src/main.js');

export interface RunningNodeDaemon {
  nodeId: string;
  proc: ChildProcess;
  output(): string;
  /** Resolves with the exit code (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<number | null>;
}

/** Starts the real node daemon (the tsc build) as its own process. */
export async function startNodeDaemon(options: {
  nodeId: string;
  natsUrl: string;
  channelDirs: string[];
  env?: Record<string, string>;
  /** Wait for this line in its output before resolving (default: "up:"). */
  readyText?: string;
}): Promise<RunningNodeDaemon> {
  const proc = spawn(process.execPath, [NODE_DAEMON_MAIN], {
    env: {
      PATH: process.env.PATH,
      NO_COLOR: '1',
      LQ_NODE_ID: options.nodeId,
      NATS_URL: options.natsUrl,
      LQ_CHANNEL_DIRS: options.channelDirs.join(','),
      LQ_HEARTBEAT_INTERVAL_MS: '1000',
      LQ_RESCAN_INTERVAL_MS: '500',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const ready = options.readyText ?? 'up:';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`node daemon not up in 15 s:\n${output}`)),
      15_000,
    );
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node daemon exited ${code}:\n${output}`));
    });
  });
  return {
    nodeId: options.nodeId,
    proc,
    output: () => output,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        return proc.exitCode;
      }
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
