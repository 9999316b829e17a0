import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ErrorCode } from '@lq/proto';
import { AgentOpError } from '../errors.js';

/**
 * The spawn layer under ChildSupervisor: one small interface over two ways of starting a child.
 * Under Bun (the shipped executable) `Bun.spawn` costs about half the CPU per exec of Bun's
 * Node-compatible child_process, which also allocates a zero-filled 256 KiB buffer per pipe; under
 * Node (jest) and for plans with an fd-3 input (the setpriv helper's environment), node's
 * child_process is used. Both start the child leading its own session and process group, with
 * stdin/stdout/stderr piped; setting uid/gid clears the supplementary groups in both.
 */
export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** Both or neither: the credentials the child gets (supplementary groups cleared). */
  uid?: number;
  gid?: number;
  /** Written to the child's fd 3 and closed (the setpriv helper's environment). */
  fd3Input?: string;
  /**
   * Nothing to write to stdin: the child's stdin is /dev/null (EOF at the first read, as an
   * empty pipe closed at once gives) instead of a pipe. One socket pair, its polling and its
   * close fewer per exec; endStdin() then does nothing. In a root without /dev/null (a minimal
   * container or chroot) the child gets that empty pipe instead (stdinMode).
   */
  noStdin?: boolean;
}

/** One of the child's output pipes. */
export interface ChildPipe {
  /** Every chunk as it arrives; set once, before anything is read. */
  onData(listener: (chunk: Uint8Array) => void): void;
  /** EOF, or destroy(). */
  onClose(listener: () => void): void;
  pause(): void;
  resume(): void;
  /** Stops reading and releases the pipe. */
  destroy(): void;
}

export interface SpawnedChild {
  /** Also the process group id: the child leads its group. */
  readonly pid: number;
  readonly stdout: ChildPipe;
  readonly stderr: ChildPipe;
  /**
   * Writes `data` (possibly empty) to stdin and closes it; EPIPE is not an error. Nothing to do
   * when the request had noStdin.
   */
  endStdin(data: Uint8Array): void;
  /** The leader's exit status; exactly one of code and signal is set. */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void;
  /** Releases every pipe (stdin included). */
  destroy(): void;
}

/** The part of Bun's API used here (bun-types is not a dependency of this repo). */
export interface BunSpawnOptions {
  cmd: string[];
  cwd: string;
  env: Record<string, string>;
  stdin: 'pipe' | 'ignore';
  stdout: 'pipe';
  stderr: 'pipe';
  detached: true;
  uid?: number;
  gid?: number;
}
interface BunFileSink {
  write(data: Uint8Array): number | Promise<number>;
  end(): number | Promise<number>;
}
interface BunSubprocess {
  readonly pid: number;
  /** Undefined when stdin is 'ignore'. */
  readonly stdin: BunFileSink | undefined;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
}
export interface BunRuntime {
  spawn(options: BunSpawnOptions): BunSubprocess;
}

let devNull: boolean | undefined;

/** How the child's stdin is given: /dev/null for a noStdin request where the root has one. */
function stdinMode(request: SpawnRequest): 'pipe' | 'ignore' {
  if (request.noStdin !== true) {
    return 'pipe';
  }
  devNull ??= existsSync('/dev/null');
  return devNull ? 'ignore' : 'pipe';
}

/** Which implementation starts this request. */
export function chooseSpawner(bun: unknown, request: SpawnRequest): 'bun' | 'node' {
  // Bun.spawn's extra fds are not used here: the setpriv path (fd 3) stays on child_process.
  return bun !== undefined && request.fd3Input === undefined ? 'bun' : 'node';
}

/** The Bun.spawn options equivalent to the child_process options nodeSpawnOptions() gives. */
export function bunSpawnOptions(request: SpawnRequest): BunSpawnOptions {
  const options: BunSpawnOptions = {
    cmd: [request.file, ...request.args],
    cwd: request.cwd,
    env: request.env,
    stdin: stdinMode(request),
    stdout: 'pipe',
    stderr: 'pipe',
    detached: true,
  };
  if (request.uid !== undefined && request.gid !== undefined) {
    options.uid = request.uid;
    options.gid = request.gid;
  }
  return options;
}

export function nodeSpawnOptions(request: SpawnRequest): SpawnOptions {
  const options: SpawnOptions = {
    cwd: request.cwd,
    env: request.env,
    detached: true,
    stdio: nodeStdio(request),
  };
  if (request.uid !== undefined && request.gid !== undefined) {
    options.uid = request.uid;
    options.gid = request.gid;
  }
  return options;
}

function nodeStdio(request: SpawnRequest): SpawnOptions['stdio'] {
  const stdin = stdinMode(request);
  if (request.fd3Input !== undefined) {
    return [stdin, 'pipe', 'pipe', 'pipe'];
  }
  return stdin === 'pipe' ? 'pipe' : [stdin, 'pipe', 'pipe'];
}

function bunRuntime(): BunRuntime | undefined {
  return (globalThis as { Bun?: BunRuntime }).Bun;
}

/**
 * Starts the child. Rejects with the system error (its `code`: ENOENT, EACCES, ...) when no
 * process could be started.
 */
export function spawnChild(
  request: SpawnRequest,
  bun: BunRuntime | undefined = bunRuntime(),
): Promise<SpawnedChild> {
  if (bun !== undefined && chooseSpawner(bun, request) === 'bun') {
    try {
      return Promise.resolve(new BunChild(bun.spawn(bunSpawnOptions(request))));
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }
  return spawnNode(request);
}

/** Keeps a thrown system error (and its code) as it is. */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function spawnNode(request: SpawnRequest): Promise<SpawnedChild> {
  return new Promise<SpawnedChild>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(request.file, request.args, nodeSpawnOptions(request));
    } catch (err) {
      reject(asError(err));
      return;
    }
    const { stdin, stdout, stderr } = child;
    if (child.pid === undefined) {
      // After a successful spawn 'error' only reports failed kill()s, which this code never does.
      child.once('error', reject);
      stdin?.destroy();
      stdout?.destroy();
      stderr?.destroy();
      return;
    }
    child.on('error', () => undefined);
    if ((stdin === null && stdinMode(request) === 'pipe') || stdout === null || stderr === null) {
      reject(new AgentOpError(ErrorCode.INTERNAL, 'spawn returned no stdio pipes'));
      return;
    }
    const fd3 = request.fd3Input === undefined ? undefined : child.stdio[3];
    if (fd3 && 'write' in fd3) {
      // EPIPE when the helper died first: its exit status reports that.
      fd3.on('error', () => undefined);
      fd3.end(request.fd3Input);
    }
    // EPIPE when the child exits or closes stdin without reading it all: not an error.
    stdin?.on('error', () => undefined);
    const pid = child.pid;
    resolve({
      pid,
      stdout: nodePipe(stdout),
      stderr: nodePipe(stderr),
      endStdin: (data) => {
        if (stdin === null) {
          return;
        }
        if (data.length > 0) {
          stdin.end(data);
        } else {
          stdin.end();
        }
      },
      onExit: (listener) => {
        child.once('exit', listener);
      },
      destroy: () => {
        stdin?.destroy();
        stdout.destroy();
        stderr.destroy();
        fd3?.destroy();
      },
    });
  });
}

function nodePipe(stream: Readable): ChildPipe {
  stream.on('error', () => undefined);
  return {
    onData: (listener) => {
      stream.on('data', listener);
    },
    onClose: (listener) => {
      stream.on('close', listener);
    },
    pause: () => {
      stream.pause();
    },
    resume: () => {
      stream.resume();
    },
    destroy: () => {
      stream.destroy();
    },
  };
}

/** A ReadableStream read in a loop that pause() holds between reads (pacing of streamed output). */
class BunPipe implements ChildPipe {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private dataListener: (chunk: Uint8Array) => void = () => undefined;
  private readonly closeListeners: Array<() => void> = [];
  private paused = false;
  private wake: (() => void) | undefined;
  private closed = false;
  private started = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.getReader();
  }

  onData(listener: (chunk: Uint8Array) => void): void {
    this.dataListener = listener;
    if (!this.started) {
      this.started = true;
      // Started after the caller's listeners are set (the next microtask at the earliest).
      queueMicrotask(() => void this.pump());
    }
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  destroy(): void {
    this.reader.cancel().catch(() => undefined);
    this.resume();
    this.close();
  }

  private async pump(): Promise<void> {
    try {
      while (!this.closed) {
        if (this.paused) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        const { done, value } = await this.reader.read();
        if (done || this.closed) {
          break;
        }
        this.dataListener(value);
      }
    } catch {
      // A read error ends the stream as EOF does (node's pipes: 'error' then 'close').
    }
    this.close();
  }

  private close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    for (const listener of this.closeListeners) {
      listener();
    }
  }
}

class BunChild implements SpawnedChild {
  readonly pid: number;
  readonly stdout: BunPipe;
  readonly stderr: BunPipe;

  constructor(private readonly proc: BunSubprocess) {
    this.pid = proc.pid;
    this.stdout = new BunPipe(proc.stdout);
    this.stderr = new BunPipe(proc.stderr);
  }

  endStdin(data: Uint8Array): void {
    const sink = this.proc.stdin;
    if (sink === undefined || sink === null) {
      return;
    }
    // EPIPE when the child exits or closes stdin without reading it all: not an error.
    try {
      if (data.length > 0) {
        const wrote = sink.write(data);
        if (wrote instanceof Promise) {
          wrote.catch(() => undefined);
        }
      }
      const ended = sink.end();
      if (ended instanceof Promise) {
        ended.catch(() => undefined);
      }
    } catch {
      // as above
    }
  }

  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.proc.exited.then(
      () =>
        listener(this.proc.signalCode === null ? this.proc.exitCode : null, this.proc.signalCode),
      () => listener(this.proc.exitCode, this.proc.signalCode),
    );
  }

  destroy(): void {
    this.stdout.destroy();
    this.stderr.destroy();
  }
}
