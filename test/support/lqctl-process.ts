// The bundled lqctl (dist/lqctl/lqctl.cjs) as a child process, for system tests: its exit code,
// stdout and stderr, with a hook on stdout to act while it runs (e.g. send SIGINT).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const LQCTL = resolve('dist/lqctl/lqctl.cjs');

export interface LqctlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runLqctl(
  args: string[],
  options: {
    /** Merged over process.env (NODE_OPTIONS removed); undefined removes a variable. */
    env: Record<string, string | undefined>;
    stdin?: string;
    onStdout?: (all: string, kill: (signal: NodeJS.Signals) => void) => void;
    timeoutMs?: number;
  },
): Promise<LqctlRun> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const [k, v] of Object.entries(options.env)) {
    if (v === undefined) {
      delete env[k];
    } else {
      env[k] = v;
    }
  }
  const proc = spawn(process.execPath, [LQCTL, ...args], { env, stdio: 'pipe' });
  proc.stdin.end(options.stdin ?? '');
  const ran: LqctlRun = { code: null, stdout: '', stderr: '' };
  proc.stdout.on('data', (d: Buffer) => {
    ran.stdout += d.toString();
    options.onStdout?.(ran.stdout, (s) => proc.kill(s));
  });
  proc.stderr.on('data', (d: Buffer) => (ran.stderr += d.toString()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`lqctl ${args.join(' ')} still running:\n${ran.stdout}\n${ran.stderr}`));
    }, options.timeoutMs ?? 60_000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      ran.code = code;
      setImmediate(() => resolvePromise(ran));
    });
  });
}
