import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient, type AgentClientOptions } from '@lq/host';

export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/**
 * The agent a guest runs: the linux-amd64 executable (scripts/build-executables.mjs, built by
 * the tests' globalSetup), not the Node bundle. LQ_AGENT_EXECUTABLE points the suites at another.
 */
export const AGENT_EXECUTABLE =
  process.env.LQ_AGENT_EXECUTABLE ?? join(REPO_ROOT, 'dist/agent/limiquantix-agent-linux-amd64');
export const AGENTCTL_BUNDLE = join(REPO_ROOT, 'dist/guest-agent/agentctl.cjs');

/** Throws a clear error when the executable was not built (a spec run without globalSetup). */
export function agentExecutable(): string {
  if (!existsSync(AGENT_EXECUTABLE)) {
    throw new Error(
      `${AGENT_EXECUTABLE} is missing: run node scripts/build.mjs && node scripts/build-executables.mjs`,
    );
  }
  return AGENT_EXECUTABLE;
}

export interface RunningAgent {
  dir: string;
  socketPath: string;
  proc: ChildProcess;
  stderr(): string;
  /** A connected, synced client; closed by stop(). */
  client(options?: Partial<AgentClientOptions>): Promise<AgentClient>;
  /** VmRSS and VmHWM of the agent process, in bytes. */
  memory(): { rss: number; hwm: number };
  stop(): Promise<void>;
}

/**
 * Starts the real agent executable (the file a guest runs) listening on a Unix socket in a fresh
 * temporary directory, with `config` written as its config file.
 */
export async function startAgent(config: Record<string, unknown> = {}): Promise<RunningAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'lq-agent-'));
  const socketPath = join(dir, 'agent.sock');
  const configPath = join(dir, 'agent.json');
  writeFileSync(configPath, JSON.stringify({ log_level: 'warn', ...config }));
  const proc = spawn(agentExecutable(), ['--listen', socketPath, '--config', configPath], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const clients: AgentClient[] = [];
  for (let i = 0; !existsSync(socketPath); i++) {
    if (proc.exitCode !== null || i > 200) {
      throw new Error(`agent did not start (exit ${proc.exitCode}): ${stderr}`);
    }
    await sleep(25);
  }
  return {
    dir,
    socketPath,
    proc,
    stderr: () => stderr,
    async client(options = {}) {
      const client = new AgentClient({ path: socketPath, hostId: 'test', ...options });
      clients.push(client);
      client.start();
      await client.waitReady(5000);
      return client;
    },
    memory() {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      const kb = (key: string) =>
        Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
      return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
    },
    async stop() {
      clients.forEach((c) => c.close());
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const exited = new Promise((r) => proc.once('exit', r));
        if ((await Promise.race([exited, sleep(3000).then(() => 'timeout')])) === 'timeout') {
          proc.kill('SIGKILL');
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
