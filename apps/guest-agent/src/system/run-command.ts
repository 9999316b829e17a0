import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';

export interface CommandResult {
  exitCode: number | null;
  signal: string;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

const CAPTURE_MAX = 64 * 1024;

/**
 * Runs a helper program (fsfreeze, chpasswd, a hook, chronyc…) in its own process group, with
 * stdin, a time limit (SIGKILL to the group) and captured output (first 64 KiB of each). A
 * program that cannot be started resolves with exitCode null and the reason in stderr.
 */
export function runCommand(
  argv: string[],
  options: { stdin?: string; timeoutMs: number; env?: Record<string, string> },
): Promise<CommandResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let child;
    try {
      child = spawn(argv[0]!, argv.slice(1), {
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: options.env ?? {
          PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        },
      });
    } catch (err) {
      resolve({
        exitCode: null,
        signal: '',
        timedOut: false,
        stdout: '',
        stderr: (err as Error).message,
        durationMs: 0,
      });
      return;
    }
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, options.timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < CAPTURE_MAX) {
        stdout += d.toString('utf8');
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < CAPTURE_MAX) {
        stderr += d.toString('utf8');
      }
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({
        exitCode: null,
        signal: '',
        timedOut,
        stdout,
        stderr: `${argv[0]} could not be started: ${err.message}`,
        durationMs: Math.round(performance.now() - started),
      });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        exitCode: code,
        signal: signal ?? '',
        timedOut,
        stdout,
        stderr,
        durationMs: Math.round(performance.now() - started),
      });
    });
  });
}

export function succeeded(r: CommandResult): boolean {
  return r.exitCode === 0 && !r.timedOut;
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** "exit 3", "signal SIGKILL", "timed out", or the start failure. */
export function describeResult(r: CommandResult): string {
  if (r.timedOut) {
    return 'timed out';
  }
  if (r.exitCode === null) {
    return r.signal ? `signal ${r.signal}` : r.stderr.trim() || 'could not start';
  }
  return `exit ${r.exitCode}`;
}
