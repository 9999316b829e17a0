// Many simulated VMs' agents in one process, for fleets too large for a process each (a Node.js
// process is about 50 MiB; 1,000 of them would not fit a test machine). Each agent is the same
// one a guest runs (assembleAgent), with its own config, socket, executions and state; only the
// process, and so the compiled code and heap, are shared. Not for guests: one guest, one agent.
//
//   limiquantix-sim-host --manifest FILE
//
// FILE is JSON: { "agents": [ { "id": "vm-1", "listen": "/dir/vm-1.sock",
//                               "config": "/dir/.sim/vm-1/agent.json" }, ... ] }
// Log lines carry "vm": <id>. SIGTERM stops every agent, then the process.
import { startupDone } from '../../guest-agent/src/runtime-tuning.js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { assembleAgent, type AssembledAgent } from '../../guest-agent/src/assemble.js';
import { SocketListenChannel } from '../../guest-agent/src/channel/socket-listen.channel.js';
import { ConfigError, loadConfig } from '../../guest-agent/src/config.js';
import { Logger } from '../../guest-agent/src/logger.js';
import { parseManifest, type ManifestEntry } from './manifest.js';

function fail(message: string): never {
  process.stderr.write(`limiquantix-sim-host: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let manifestPath: string | undefined;
  try {
    manifestPath = parseArgs({ options: { manifest: { type: 'string' } } }).values.manifest;
  } catch (err) {
    fail((err as Error).message);
  }
  if (!manifestPath) {
    fail('usage: limiquantix-sim-host --manifest FILE');
  }
  let entries: ManifestEntry[];
  try {
    entries = parseManifest(readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    fail(`${manifestPath}: ${(err as Error).message}`);
  }

  const running: AssembledAgent[] = [];
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) {
      return;
    }
    stopping = true;
    void Promise.allSettled(running.map((a) => a.stop())).finally(() => process.exit(code));
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  const hostLog = new Logger('warn', { sim_host: process.pid });
  process.on('uncaughtException', (err) => {
    hostLog.error('uncaught exception', { error: err.stack ?? err.message });
  });
  process.on('unhandledRejection', (err) => {
    hostLog.error('unhandled rejection', { error: (err as Error)?.stack ?? String(err) });
  });

  // Every config is checked before any agent starts: a bad one starts nothing.
  const configs = [];
  for (const entry of entries) {
    try {
      configs.push(loadConfig(entry.config));
    } catch (err) {
      const what = err instanceof ConfigError ? err.message : (err as Error).message;
      hostLog.error(`agent ${entry.id} did not start: ${what}`, { vm: entry.id });
      process.exit(2);
    }
  }
  for (const [i, entry] of entries.entries()) {
    if (stopping) {
      return;
    }
    const config = configs[i]!;
    try {
      const log = new Logger(config.log_level, { vm: entry.id });
      const assembled = await assembleAgent(config, new SocketListenChannel(entry.listen), log);
      running.push(assembled);
      await assembled.agent.start();
      await assembled.agent.announce();
    } catch (err) {
      hostLog.error(`agent ${entry.id} did not start: ${(err as Error).message}`, {
        vm: entry.id,
      });
      stop(1);
      return;
    }
  }
  startupDone();
}

void main();
