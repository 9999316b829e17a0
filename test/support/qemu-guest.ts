// A real QEMU guest for end-to-end tests: the image scripts/vm/build-guest.sh builds into .vmlab/
// (a Debian kernel, an initramfs with Node.js and the guest agent, an ext4 data disk), booted
// under TCG with the agent's virtio-serial port on `<channelDir>/<vmId>.sock`, where a node
// daemon watching channelDir finds it like any libvirt VM. No network unless asked for (`nic`:
// QEMU user networking with restrict=on, which reaches nothing outside QEMU); KVM only with
// LQ_QEMU_KVM=1 (/dev/kvm exists on the CI machines but KVM guests crash or hang there).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from './service-process.js';

/** The virtio-serial port name the agent serves and the node daemon expects. */
export const AGENT_PORT_NAME = 'org.limiquantix.agent.0';
export const BUILD_SCRIPT = join(REPO_ROOT, 'scripts/vm/build-guest.sh');
/** Where the image is built (VMLAB overrides it, as for the script). */
export const VMLAB = process.env.VMLAB ?? join(REPO_ROOT, '.vmlab');

/** .vmlab/guest.json, written by the build script. */
export interface GuestManifest {
  inputs: string;
  built_at: string;
  kernel: 'vmlinux' | 'vmlinuz';
  initrd: string;
  data_disk: string;
  /** `uname -r` in the guest, e.g. 6.1.0-56-amd64. */
  kernel_version: string;
  kernel_package: string;
  /** Debian's package version, which `uname -v` shows (e.g. 6.1.192-2). */
  kernel_package_version: string;
  modules: string[];
  agent_version: string;
  agent_sha256: string;
  agent_device: string;
  agent_config: string;
  data_mount: string;
  users: string[];
}

export interface GuestImage {
  dir: string;
  kernel: string;
  initrd: string;
  dataDisk: string;
  manifest: GuestManifest;
}

/** The built image, or undefined when .vmlab holds none (run scripts/vm/build-guest.sh). */
export function guestImage(dir = VMLAB): GuestImage | undefined {
  let manifest: GuestManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'guest.json'), 'utf8')) as GuestManifest;
  } catch {
    return undefined;
  }
  const image = {
    dir,
    kernel: join(dir, manifest.kernel),
    initrd: join(dir, manifest.initrd),
    dataDisk: join(dir, manifest.data_disk),
    manifest,
  };
  return [image.kernel, image.initrd, image.dataDisk].every((f) => existsSync(f))
    ? image
    : undefined;
}

/**
 * Runs scripts/vm/build-guest.sh (a no-op in about a second when nothing changed; it takes a
 * lock, so parallel jest workers build once) and returns the image. Rejects with the script's
 * output when it fails, e.g. naming the Debian packages that are missing.
 */
export async function buildGuestImage(timeoutMs = 300_000): Promise<GuestImage> {
  const proc = spawn('bash', [BUILD_SCRIPT], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VMLAB },
  });
  let output = '';
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${BUILD_SCRIPT} took over ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    proc.once('error', reject);
    proc.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  const image = guestImage();
  if (code !== 0 || !image) {
    throw new Error(`${BUILD_SCRIPT} failed (exit ${code}):\n${output.trim()}`);
  }
  return image;
}

function kvm(): boolean {
  return process.env.LQ_QEMU_KVM === '1';
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

let availability: { ok: boolean; reason: string; binary?: string } | undefined;

/**
 * Whether a guest can be booted here: qemu-system-x86_64 (LQ_QEMU_BINARY overrides) and
 * `timeout` exist, and QEMU starts a paused machine with the accelerator the tests use and quits
 * on request. Says whether the image is built too, but a missing image is not a reason to skip:
 * buildGuestImage() makes it. Cached.
 */
export function qemuAvailable(): {
  ok: boolean;
  reason: string;
  binary?: string;
  imageBuilt: boolean;
} {
  availability ??= probeQemu();
  return { ...availability, imageBuilt: guestImage() !== undefined };
}

function probeQemu(): { ok: boolean; reason: string; binary?: string } {
  const binary = process.env.LQ_QEMU_BINARY ?? onPath('qemu-system-x86_64');
  if (!binary) {
    return {
      ok: false,
      reason: 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)',
    };
  }
  if (!onPath('timeout')) {
    return { ok: false, reason: 'timeout (coreutils) is not on PATH', binary };
  }
  const probe = spawnSync(
    binary,
    [
      ...['-accel', kvm() ? 'kvm' : 'tcg', '-machine', 'pc', '-nodefaults', '-no-user-config'],
      ...['-display', 'none', '-S', '-qmp', 'stdio'],
    ],
    {
      input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  if (probe.error || probe.status !== 0) {
    const why = probe.error?.message ?? `exit ${probe.status ?? probe.signal}`;
    return {
      ok: false,
      reason: `${binary} cannot start a machine (${why}): ${(probe.stderr || probe.stdout || '').trim().slice(0, 500)}`,
      binary,
    };
  }
  return { ok: true, reason: `${binary} starts (${kvm() ? 'KVM' : 'TCG'})`, binary };
}

export interface BootGuestOptions {
  /** The node daemon's channel directory: QEMU listens on `<channelDir>/<vmId>.sock`. */
  channelDir: string;
  /** Also the guest's hostname. Letters, digits, _ and -. */
  vmId: string;
  /** Appended to the kernel command line (e.g. `lq.agent_args=--log-level,debug`). */
  kernelAppend?: string;
  /**
   * true (default): a private copy of the image's data.img as /dev/vda (mounted at /mnt/data);
   * a path: that raw image itself (not copied); false: no data disk.
   */
  dataDisk?: boolean | string;
  /** Default 512. */
  memoryMb?: number;
  /** Hard limit on QEMU's life (`timeout -s KILL`). Default 300 000. */
  timeoutMs?: number;
  /**
   * Default true: a guest reboot ends QEMU (-no-reboot). false: QEMU resets the machine and
   * boots the same kernel again (reboot tests).
   */
  noReboot?: boolean;
  /** QEMU -rtc base= (e.g. `2001-01-01T00:00:00`): the clock the guest boots with. */
  rtcBase?: string;
  /** How long to wait for QEMU to be up (not the guest). Default 20 000. */
  startTimeoutMs?: number;
  image?: GuestImage;
  /** More QEMU arguments. */
  extraArgs?: string[];
  /**
   * A virtio NIC on QEMU user networking with restrict=on (the guest reaches nothing outside
   * QEMU; the network tests need an interface to re-configure). Default false: no NIC.
   */
  nic?: boolean;
}

export interface GuestExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface QemuGuest {
  readonly vmId: string;
  /** The `timeout` process QEMU runs under (its exit status is QEMU's; 137 when killed). */
  readonly proc: ChildProcess;
  /** Private temp dir: console.log, qmp.sock, data.img. Removed by kill(). */
  readonly dir: string;
  readonly socketPath: string;
  /** The data disk image in use, if any. */
  readonly dataDiskPath: string | undefined;
  readonly image: GuestImage;
  /** Date.now() when QEMU was spawned. */
  readonly startedAt: number;
  /** The full command line. */
  readonly argv: string[];
  /** The serial console so far (kernel messages, init's lines, the agent's log). */
  console(): string;
  /** QEMU's own stdout and stderr. */
  output(): string;
  /** Resolves with ms since start once the console matches; rejects on timeout or exit. */
  waitConsole(pattern: RegExp | string, timeoutMs: number, from?: number): Promise<number>;
  /** Resolves when QEMU exits; rejects after timeoutMs. */
  waitExit(timeoutMs: number): Promise<GuestExit>;
  readonly exited: boolean;
  /** One QMP command (capabilities negotiated per call); resolves with its `return`. */
  qmp(command: string, args?: Record<string, unknown>): Promise<unknown>;
  /** Stops QEMU (SIGTERM, SIGKILL after 3 s) and removes its temp dir and socket. Idempotent. */
  kill(): Promise<GuestExit>;
}

// sockaddr_un.sun_path is 108 bytes including the terminating NUL.
const SOCKET_PATH_MAX_BYTES = 107;
const OUTPUT_TAIL = 64 * 1024;

/**
 * Starts QEMU with the built image and resolves once QEMU runs (QMP answers `running`), which is
 * some seconds before the agent does: wait for the node daemon to report the VM ready, or for
 * waitConsole(/agent start/).
 */
export async function bootGuest(options: BootGuestOptions): Promise<QemuGuest> {
  const available = qemuAvailable();
  if (!available.ok || !available.binary) {
    throw new Error(`QEMU unavailable: ${available.reason}`);
  }
  const image = options.image ?? guestImage();
  if (!image) {
    throw new Error(`no guest image in ${VMLAB}: run bash scripts/vm/build-guest.sh`);
  }
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(options.vmId)) {
    throw new Error(`vmId ${JSON.stringify(options.vmId)}: letters, digits, _ and - only`);
  }
  mkdirSync(options.channelDir, { recursive: true });
  const socketPath = join(options.channelDir, `${options.vmId}.sock`);
  if (Buffer.byteLength(socketPath) > SOCKET_PATH_MAX_BYTES) {
    throw new Error(`${socketPath} is longer than a Unix socket path may be`);
  }
  rmSync(socketPath, { force: true });
  const dir = mkdtempSync(join(tmpdir(), 'lq-qemu-'));
  const consolePath = join(dir, 'console.log');
  const qmpPath = join(dir, 'qmp.sock');
  let dataDiskPath: string | undefined;
  if (options.dataDisk === undefined || options.dataDisk === true) {
    dataDiskPath = join(dir, 'data.img');
    copyFileSync(image.dataDisk, dataDiskPath, constants.COPYFILE_FICLONE);
  } else if (typeof options.dataDisk === 'string') {
    dataDiskPath = options.dataDisk;
  }
  const append = [
    'console=ttyS0',
    'quiet',
    // Under TCG on a loaded host the kernel's IO-APIC timer check can fail and panic ("IO-APIC +
    // timer doesn't work"), rebooting forever with panic=-1; the PIT works, skip the check.
    'no_timer_check',
    'panic=-1',
    `lq.hostname=${options.vmId}`,
    options.kernelAppend ?? '',
  ]
    .join(' ')
    .trim();
  const qemuArgs = [
    ...['-accel', kvm() ? 'kvm' : 'tcg', '-cpu', kvm() ? 'host' : 'max'],
    ...['-m', String(options.memoryMb ?? 512), '-smp', '1'],
    ...['-nodefaults', '-no-user-config', '-display', 'none'],
    ...(options.nic
      ? ['-netdev', 'user,id=n0,restrict=on', '-device', 'virtio-net-pci,netdev=n0']
      : ['-nic', 'none']),
    ...['-serial', `file:${consolePath}`],
    ...['-kernel', image.kernel, '-initrd', image.initrd, '-append', append],
    ...['-device', 'virtio-serial-pci,id=vser0'],
    ...['-chardev', `socket,id=agent0,path=${socketPath},server=on,wait=off`],
    ...[
      '-device',
      `virtserialport,bus=vser0.0,chardev=agent0,name=${AGENT_PORT_NAME},id=agent0port`,
    ],
    ...['-qmp', `unix:${qmpPath},server=on,wait=off`],
    ...(options.noReboot === false ? [] : ['-no-reboot']),
    ...(options.rtcBase ? ['-rtc', `base=${options.rtcBase}`] : []),
    ...(dataDiskPath ? ['-drive', `file=${dataDiskPath},if=virtio,format=raw`] : []),
    ...(options.extraArgs ?? []),
  ];
  const seconds = Math.ceil((options.timeoutMs ?? 300_000) / 1000);
  // pdeathsig twice: QEMU dies with `timeout`, and `timeout` with the jest worker.
  const deathsig = parentDeathSignal();
  const argv = [
    ...deathsig,
    'timeout',
    '-s',
    'KILL',
    String(seconds),
    ...deathsig,
    available.binary,
    ...qemuArgs,
  ];
  const startedAt = Date.now();
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  return new RunningGuest(
    options.vmId,
    proc,
    dir,
    socketPath,
    dataDiskPath,
    image,
    startedAt,
    argv,
    consolePath,
    qmpPath,
  ).started(options.startTimeoutMs ?? 20_000);
}

class RunningGuest implements QemuGuest {
  private out = '';
  private exit: GuestExit | undefined;
  private readonly exitPromise: Promise<GuestExit>;
  private qmpChain: Promise<unknown> = Promise.resolve();
  private killed: Promise<GuestExit> | undefined;

  constructor(
    readonly vmId: string,
    readonly proc: ChildProcess,
    readonly dir: string,
    readonly socketPath: string,
    readonly dataDiskPath: string | undefined,
    readonly image: GuestImage,
    readonly startedAt: number,
    readonly argv: string[],
    private readonly consolePath: string,
    private readonly qmpPath: string,
  ) {
    const collect = (d: Buffer) => {
      this.out = (this.out + d.toString()).slice(-OUTPUT_TAIL);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.exitPromise = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      proc.once('error', (err) => {
        this.out += `${err.message}\n`;
        this.exit = { code: null, signal: null };
        resolve(this.exit);
      });
    });
  }

  async started(timeoutMs: number): Promise<QemuGuest> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exit) {
        await this.kill();
        throw new Error(
          `QEMU exited (${this.exit.code ?? this.exit.signal}) while starting:\n${this.out.trim()}\n${this.argv.join(' ')}`,
        );
      }
      if (existsSync(this.qmpPath) && existsSync(this.socketPath)) {
        try {
          const status = (await this.qmp('query-status')) as { status?: string };
          if (status.status === 'running') {
            return this;
          }
        } catch {
          // not listening yet
        }
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(`QEMU not running after ${timeoutMs} ms:\n${this.out.trim()}`);
      }
      await sleep(25);
    }
  }

  get exited(): boolean {
    return this.exit !== undefined;
  }

  console(): string {
    try {
      return readFileSync(this.consolePath, 'utf8');
    } catch {
      return '';
    }
  }

  output(): string {
    return this.out;
  }

  async waitConsole(pattern: RegExp | string, timeoutMs: number, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const matches = (text: string) =>
      typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
    for (;;) {
      if (matches(this.console().slice(from))) {
        return Date.now() - this.startedAt;
      }
      if (this.exit) {
        throw new Error(
          `QEMU exited (${this.exit.code ?? this.exit.signal}) before the console showed ${String(pattern)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(`the console did not show ${String(pattern)} within ${timeoutMs} ms`);
      }
      await sleep(50);
    }
  }

  async waitExit(timeoutMs: number): Promise<GuestExit> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exitPromise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`QEMU still running after ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  qmp(command: string, args?: Record<string, unknown>): Promise<unknown> {
    // QEMU serves one QMP client at a time: one call after another.
    const next = this.qmpChain.then(() => qmpCall(this.qmpPath, command, args));
    this.qmpChain = next.catch(() => undefined);
    return next;
  }

  kill(): Promise<GuestExit> {
    this.killed ??= (async () => {
      if (!this.exit) {
        this.proc.kill('SIGTERM'); // timeout passes it on to QEMU, which quits at once
        try {
          await this.waitExit(3000);
        } catch {
          this.proc.kill('SIGKILL');
        }
      }
      const exit = await this.exitPromise;
      rmSync(this.socketPath, { force: true });
      if (process.env.LQ_QEMU_KEEP !== '1') {
        rmSync(this.dir, { recursive: true, force: true });
      }
      return exit;
    })();
    return this.killed;
  }
}

/** Connects, negotiates capabilities, runs one command, and hangs up. */
function qmpCall(
  path: string,
  command: string,
  args: Record<string, unknown> | undefined,
  timeoutMs = 5000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buf = '';
    let step: 'greeting' | 'capabilities' | 'command' = 'greeting';
    const done = (err: Error | undefined, value?: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) {
        reject(err);
      } else {
        resolve(value);
      }
    };
    const timer = setTimeout(
      () => done(new Error(`QMP ${command}: no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('error', (err) => done(err));
    socket.on('data', (d: Buffer) => {
      buf += d.toString();
      let cut: number;
      while ((cut = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 1);
        if (!line) {
          continue;
        }
        const msg = JSON.parse(line) as {
          QMP?: unknown;
          return?: unknown;
          error?: { class: string; desc: string };
          event?: string;
        };
        if (msg.event) {
          continue;
        }
        if (msg.error) {
          done(new Error(`QMP ${command}: ${msg.error.class}: ${msg.error.desc}`));
          return;
        }
        if (step === 'greeting' && msg.QMP) {
          step = 'capabilities';
          socket.write('{"execute":"qmp_capabilities"}\n');
        } else if (step === 'capabilities' && 'return' in msg) {
          step = 'command';
          socket.write(
            `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
          );
        } else if (step === 'command' && 'return' in msg) {
          done(undefined, msg.return);
          return;
        }
      }
    });
    // `quit` closes the connection without always answering first.
    socket.on('close', () => {
      if (step === 'command' && command === 'quit') {
        done(undefined, {});
      } else {
        done(new Error(`QMP ${command}: connection closed`));
      }
    });
  });
}

let deathsigArgs: string[] | undefined;

function parentDeathSignal(): string[] {
  if (deathsigArgs === undefined) {
    const setpriv = '/usr/bin/setpriv';
    deathsigArgs =
      existsSync(setpriv) &&
      spawnSync(setpriv, ['--pdeathsig', 'KILL', '/bin/true'], { stdio: 'ignore' }).status === 0
        ? [setpriv, '--pdeathsig', 'KILL']
        : [];
  }
  return deathsigArgs;
}
