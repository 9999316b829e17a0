import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository root: the nearest folder above this module with a package.json and apps/
// (this file is also bundled into bench/, so a fixed relative path would not do).
function findRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'apps'))) {
      return dir;
    }
  }
  return process.cwd();
}

export const REPO_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));

export interface ServiceProcess {
  proc: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts one of the built Node services (a dist/tsc main) with only the environment given,
 * and resolves once its output contains `readyText`; rejects with its output if it exits or
 * is not ready in time.
 */
export async function spawnService(options: {
  main: string;
  env: Record<string, string | undefined>;
  readyText: string;
  timeoutMs: number;
}): Promise<ServiceProcess> {
  // LQ_PROFILE_DIR=<dir>: write a V8 CPU profile of every service started (for benches).
  const profile = process.env.LQ_PROFILE_DIR
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.LQ_PROFILE_DIR}`]
    : [];
  const proc = spawn(process.execPath, [...profile, join(REPO_ROOT, options.main)], {
    env: { PATH: process.env.PATH, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${options.main} not ready in ${options.timeoutMs} ms:\n${output}`)),
      options.timeoutMs,
    );
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes(options.readyText)) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.main} exited ${code}:\n${output}`));
    });
  });
  return {
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
