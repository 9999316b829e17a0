// A private nats-server (the Debian package's binary) for tests, on 127.0.0.1 and a free port.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface NatsServerOptions {
  /** Default: a free port. */
  port?: number;
  /** nats-server config file text (`-c`); the command-line host and port still win. */
  config?: string;
  /** More files written beside the config, by name: what it `include`s (e.g. auth.conf). */
  files?: Record<string, string>;
  /** Added to the server's environment (what the config's `$VAR`s resolve to). */
  env?: Record<string, string>;
  /** Extra command-line arguments. */
  args?: string[];
  /** `-js` with a private `-sd` store dir (kept across restart(), removed by stop()). */
  jetstream?: boolean;
  /** Default: /usr/sbin/nats-server, else nats-server on PATH. */
  binary?: string;
  /** How long to wait for it to accept connections. Default 5000. */
  readyTimeoutMs?: number;
}

export interface RunningNats {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** Of the current process; changes on restart(). */
  readonly pid: number;
  /** Set when jetstream was asked for. */
  readonly storeDir: string | undefined;
  /** Last 64 KiB of its log (stderr). */
  output(): string;
  /** SIGTERM, SIGKILL after 3 s; removes its temporary files. Idempotent. */
  stop(): Promise<void>;
  /** Stops it and starts it again on the same port; resolves once it accepts connections. */
  restart(): Promise<void>;
}

const HOST = '127.0.0.1';
const KILL_GRACE_MS = 3000;
const OUTPUT_TAIL = 64 * 1024;
const DEBIAN_BINARY = '/usr/sbin/nats-server';

/** Ports this process has handed out: the kernel may give a closed one back to the next bind(0). */
const handedOut = new Set<number>();
const FREE_PORT_ATTEMPTS = 64;

/**
 * A TCP port on 127.0.0.1 that was free a moment ago and that no earlier call in this process
 * returned, so ports taken together (a server's client, monitor and route ports) are distinct.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < FREE_PORT_ATTEMPTS; attempt++) {
    const port = await boundPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no port that this process had not handed out in ${FREE_PORT_ATTEMPTS} tries`);
}

function boundPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') {
          resolve(address.port);
        } else {
          reject(new Error('could not read the bound port'));
        }
      });
    });
  });
}

/** The nats-server binary, or an Error saying how to install it. */
export function findNatsServer(): string {
  const candidates = [
    DEBIAN_BINARY,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'nats-server')),
  ];
  for (const candidate of candidates) {
    if (isExecutable(candidate)) {
      return candidate;
    }
  }
  throw new Error(
    'nats-server not found (looked in /usr/sbin and PATH): apt-get install nats-server',
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Starts nats-server and resolves once it answers a TCP connection with its INFO line. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<RunningNats> {
  const binary = options.binary ?? findNatsServer();
  if (!isExecutable(binary)) {
    throw new Error(`nats-server not found at ${binary}: apt-get install nats-server`);
  }
  const server = new NatsServerProcess(binary, options);
  try {
    await server.start(options.port);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

class NatsServerProcess implements RunningNats {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log = '';
  private currentPort = 0;
  private stopped: Promise<void> | undefined;
  private readonly tmp: string;
  private readonly configPath: string | undefined;
  readonly storeDir: string | undefined;

  constructor(
    private readonly binary: string,
    private readonly options: NatsServerOptions,
  ) {
    for (const name of Object.keys(options.files ?? {})) {
      if (
        basename(name) !== name ||
        ['', '.', '..', 'nats-server.conf', 'jetstream'].includes(name)
      ) {
        throw new Error(
          `files: ${JSON.stringify(name)} must be a file name other than nats-server.conf`,
        );
      }
    }
    this.tmp = mkdtempSync(join(tmpdir(), 'lq-nats-'));
    if (options.config !== undefined) {
      this.configPath = join(this.tmp, 'nats-server.conf');
      writeFileSync(this.configPath, options.config);
    }
    for (const [name, text] of Object.entries(options.files ?? {})) {
      writeFileSync(join(this.tmp, name), text);
    }
    if (options.jetstream) {
      this.storeDir = join(this.tmp, 'jetstream');
    }
  }

  get url(): string {
    return `nats://${HOST}:${this.currentPort}`;
  }

  get port(): number {
    return this.currentPort;
  }

  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  output(): string {
    return this.log;
  }

  /** With no port given, a port taken between freePort() and the bind is retried. */
  async start(port: number | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.currentPort = port ?? (await freePort());
      try {
        await this.spawnAndWait();
        return;
      } catch (err) {
        if (port !== undefined || attempt >= 3 || !/address already in use/i.test(this.log)) {
          throw err;
        }
      }
    }
  }

  async restart(): Promise<void> {
    if (this.stopped) {
      throw new Error('nats-server was stopped');
    }
    await this.halt();
    await this.spawnAndWait();
  }

  stop(): Promise<void> {
    this.stopped ??= this.halt().finally(() => {
      rmSync(this.tmp, { recursive: true, force: true });
    });
    return this.stopped;
  }

  private async spawnAndWait(): Promise<void> {
    const args = ['-a', HOST, '-p', String(this.currentPort)];
    if (this.configPath) {
      args.push('-c', this.configPath);
    }
    if (this.storeDir) {
      args.push('-js', '-sd', this.storeDir);
    }
    args.push(...(this.options.args ?? []));
    const [command, ...rest] = [...parentDeathWrapper(), this.binary, ...args] as [
      string,
      ...string[],
    ];
    this.log = '';
    const proc = spawn(command, rest, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.options.env ? { ...process.env, ...this.options.env } : process.env,
    });
    this.proc = proc;
    this.exited = new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.once('error', (err) => {
        this.log += `${err.message}\n`;
        resolve();
      });
    });
    const collect = (chunk: Buffer) => {
      this.log = (this.log + chunk.toString()).slice(-OUTPUT_TAIL);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    await this.waitReady(proc);
  }

  private async waitReady(proc: ChildProcess): Promise<void> {
    const timeoutMs = this.options.readyTimeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        await sleep(20); // the rest of its log
        throw new Error(
          `nats-server exited (${proc.exitCode ?? proc.signalCode}) before accepting connections on ${this.url}:\n${this.log.trim()}`,
        );
      }
      if (await answersWithInfo(this.currentPort)) {
        return;
      }
      if (Date.now() > deadline) {
        await this.halt();
        throw new Error(
          `nats-server did not accept connections on ${this.url} within ${timeoutMs} ms:\n${this.log.trim()}`,
        );
      }
      await sleep(25);
    }
  }

  private async halt(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      await this.exited;
      return;
    }
    proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const exitedInTime = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), KILL_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!exitedInTime) {
      proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** True when something on the port sends a NATS `INFO {...}` line. */
function answersWithInfo(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    let data = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      if (data.includes('\n')) {
        done(data.startsWith('INFO '));
      }
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

let pdeathsig: string[] | undefined;

// setpriv --pdeathsig: the server dies with the jest worker that started it, even on a crash.
function parentDeathWrapper(): string[] {
  if (pdeathsig === undefined) {
    const setpriv = '/usr/bin/setpriv';
    pdeathsig =
      existsSync(setpriv) &&
      spawnSync(setpriv, ['--pdeathsig', 'TERM', '/bin/true'], { stdio: 'ignore' }).status === 0
        ? [setpriv, '--pdeathsig', 'TERM']
        : [];
  }
  return pdeathsig;
}
