// Simulated VMs: one real guest agent process per VM, each serving `<dir>/<vmId>.sock` the way
// QEMU's chardev socket does for a real VM. Shared by scripts/sim.mjs (the `npm run sim` CLI)
// and test/support/sim-vms.ts (tests); the types are in sim-core.d.mts. Plain Node.js, no
// dependencies, builds nothing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const AGENT_BUNDLE = join(REPO_ROOT, 'dist/guest-agent/limiquantix-agent.cjs');
/** Runs many agents in one process (agentsPerProcess > 1). */
export const SIM_HOST_BUNDLE = join(REPO_ROOT, 'dist/guest-agent/limiquantix-sim-host.cjs');
export const MAX_VMS = 2000;
export const DEFAULT_PREFIX = 'vm-';
/** SIGTERM → SIGKILL delay when stopping an agent. */
export const KILL_GRACE_MS = 3000;

// sockaddr_un.sun_path is 108 bytes including the terminating NUL.
const SOCKET_PATH_MAX_BYTES = 107;
const STDERR_TAIL_BYTES = 64 * 1024;
const PREFIX_PATTERN = /^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*)?$/;
// Auto-restart (--restart): wait this long, and give up after this many quick crashes in a row.
const RESTART_DELAY_MS = 1000;
const QUICK_CRASH_MS = 5000;
const MAX_QUICK_CRASHES = 5;

/** A usage or start-up problem, with a message meant for a person. */
export class SimError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SimError';
  }
}

/**
 * Deep-merges `extra` into `base` (plain objects merge key by key; arrays, scalars and null
 * replace). Neither argument is modified.
 * @param {Record<string, unknown>} base
 * @param {Record<string, unknown> | undefined} extra
 * @returns {Record<string, unknown>}
 */
export function mergeConfig(base, extra) {
  const out = { ...base };
  for (const [key, value] of Object.entries(extra ?? {})) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The config a simulated VM's agent starts with, before `config` is merged in: quiet logs, file
 * transfer confined to its work dir and /tmp, and every command that would touch this machine
 * — shutdown, fsfreeze, chpasswd, setting the clock and RTC, ifup/ifdown — pointed at the recorder; time
 * services absent; quiesce sees one fake filesystem (the work dir) and keeps its state there.
 * @param {{ workDir: string, recorder: string }} vm
 */
export function baseAgentConfig(vm) {
  return {
    log_level: 'warn',
    files: { roots: [vm.workDir, '/tmp'] },
    commands: {
      poweroff: [vm.recorder, 'poweroff'],
      reboot: [vm.recorder, 'reboot'],
      halt: [vm.recorder, 'halt'],
      fsfreeze: [vm.recorder, 'fsfreeze'],
      chpasswd: [vm.recorder, 'chpasswd'],
      set_clock: [vm.recorder, 'set-clock'],
      hwclock_systohc: [vm.recorder, 'hwclock'],
      chronyc: join(vm.workDir, 'no-chronyc'),
      systemctl: join(vm.workDir, 'no-systemctl'),
      ntpdate: join(vm.workDir, 'no-ntpdate'),
      // Network stacks: ifupdown over a file in the work dir, ifup/ifdown the recorder; the
      // others absent (this machine's networkctl must never be found).
      ifup: join(vm.workDir, 'record-ifup.sh'),
      ifdown: join(vm.workDir, 'record-ifdown.sh'),
      netplan: join(vm.workDir, 'no-netplan'),
      nmcli: join(vm.workDir, 'no-nmcli'),
      networkctl: join(vm.workDir, 'no-networkctl'),
    },
    network: {
      backend: 'ifupdown',
      state_file: join(vm.workDir, 'network-pending.json'),
      interfaces_file: join(vm.workDir, 'interfaces'),
      netplan_dir: join(vm.workDir, 'netplan'),
      nm_connections_dir: join(vm.workDir, 'system-connections'),
      networkd_dir: join(vm.workDir, 'systemd-network'),
    },
    quiesce: {
      pre_freeze_dir: join(vm.workDir, 'pre-freeze.d'),
      post_thaw_dir: join(vm.workDir, 'post-thaw.d'),
      state_file: join(vm.workDir, 'quiesce.json'),
      mounts_file: join(vm.workDir, 'mounts'),
    },
  };
}

// Appends its arguments to shutdown.log beside it: the simulated VM's "shutdown" never touches
// this machine.
const RECORDER_SCRIPT = `#!/bin/sh
printf '%s\\n' "$*" >> "$(dirname "$0")/shutdown.log"
`;

/**
 * Starts `count` guest agents on `<dir>/<prefix><i>.sock` (i = 1..count) and resolves once
 * every socket exists. On failure, whatever was started is stopped before rejecting.
 * @param {import('./sim-core.d.mts').StartSimVmsOptions} options
 * @returns {Promise<import('./sim-core.d.mts').SimVms>}
 */
export async function startSimVms(options) {
  const o = validateSimOptions(options);
  const bundle = o.agentsPerProcess > 1 ? o.simHostBundle : o.agentBundle;
  if (!existsSync(bundle)) {
    throw new SimError(`guest agent bundle ${bundle} is missing: run \`npm run build\` first`);
  }
  try {
    mkdirSync(o.dir, { recursive: true });
  } catch (err) {
    throw new SimError(`cannot create channel directory ${o.dir}: ${err.message}`);
  }
  const records = [];
  for (let index = 1; index <= o.count; index++) {
    records.push(prepareVm(o, index));
  }
  const sim = o.agentsPerProcess > 1 ? new HostSim(records, o) : new Sim(records, o);
  try {
    await sim.startAll();
  } catch (err) {
    await sim.stop();
    throw err;
  }
  return sim;
}

/**
 * Checks options and fills in defaults; throws SimError naming the bad option.
 * @param {import('./sim-core.d.mts').StartSimVmsOptions} options
 */
export function validateSimOptions(options) {
  if (!isPlainObject(options)) {
    throw new SimError('startSimVms needs an options object');
  }
  const {
    dir,
    count,
    prefix = DEFAULT_PREFIX,
    config,
    restartOnExit = false,
    agentsPerProcess = 1,
  } = options;
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new SimError('dir is required (the channel directory that receives <vmId>.sock)');
  }
  if (!Number.isInteger(count) || count < 1 || count > MAX_VMS) {
    throw new SimError(`count must be an integer from 1 to ${MAX_VMS} (got ${String(count)})`);
  }
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) {
    throw new SimError(
      `prefix may hold only letters, digits, '.', '_' and '-', and may not start with '.' (got ${JSON.stringify(prefix)})`,
    );
  }
  if (config !== undefined && typeof config !== 'function' && !isPlainObject(config)) {
    throw new SimError('config must be an object (merged into each agent config) or a function');
  }
  if (!Number.isInteger(agentsPerProcess) || agentsPerProcess < 1 || agentsPerProcess > MAX_VMS) {
    throw new SimError(
      `agentsPerProcess must be an integer from 1 to ${MAX_VMS} (got ${String(agentsPerProcess)})`,
    );
  }
  if (agentsPerProcess > 1 && restartOnExit) {
    throw new SimError('restartOnExit needs agentsPerProcess 1 (a process per agent)');
  }
  return {
    dir: resolve(dir),
    count,
    prefix,
    config,
    restartOnExit: Boolean(restartOnExit),
    agentsPerProcess,
    agentBundle: options.agentBundle ?? AGENT_BUNDLE,
    simHostBundle: options.simHostBundle ?? SIM_HOST_BUNDLE,
    readyTimeoutMs: options.readyTimeoutMs ?? 10_000,
    startConcurrency: options.startConcurrency ?? 16,
    onEvent: options.onEvent ?? (() => undefined),
    dieWithParent: options.dieWithParent ?? true,
    runtime: validRuntime(options.runtime),
  };
}

/**
 * The JavaScript runtime the agents run on: Node.js (this one) by default, or the path of a
 * `bun` binary, the runtime the shipped agent executables are built with (build-executables.mjs).
 */
function validRuntime(runtime) {
  if (runtime === undefined) {
    return process.execPath;
  }
  if (typeof runtime !== 'string' || !existsSync(runtime)) {
    throw new SimError(`runtime must be the path of a node or bun binary (got ${String(runtime)})`);
  }
  return runtime;
}

function prepareVm(o, index) {
  const id = `${o.prefix}${index}`;
  const socketPath = join(o.dir, `${id}.sock`);
  if (Buffer.byteLength(socketPath) > SOCKET_PATH_MAX_BYTES) {
    throw new SimError(
      `socket path ${socketPath} is longer than ${SOCKET_PATH_MAX_BYTES} bytes (the Unix socket limit): use a shorter dir or prefix`,
    );
  }
  const workDir = join(o.dir, '.sim', id);
  mkdirSync(workDir, { recursive: true });
  const recorder = join(workDir, 'record-shutdown.sh');
  writeFileSync(recorder, RECORDER_SCRIPT, { mode: 0o755 });
  for (const tool of ['ifup', 'ifdown']) {
    writeFileSync(
      join(workDir, `record-${tool}.sh`),
      RECORDER_SCRIPT.replace('"$*"', `"${tool} $*"`),
      {
        mode: 0o755,
      },
    );
  }
  // The simulated VM's network configuration (network.get/configure), DHCP on eth0.
  writeFileSync(
    join(workDir, 'interfaces'),
    'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n',
  );
  const shutdownLog = join(workDir, 'shutdown.log');
  writeFileSync(shutdownLog, '');
  // The one filesystem a simulated VM's quiesce sees: its work dir (fsfreeze is the recorder).
  writeFileSync(join(workDir, 'mounts'), `simdisk-${id} ${workDir} ext4 rw 0 0\n`);
  const extra = typeof o.config === 'function' ? o.config({ id, index, workDir }) : o.config;
  if (extra !== undefined && !isPlainObject(extra)) {
    throw new SimError(`config for ${id} must be an object`);
  }
  const configPath = join(workDir, 'agent.json');
  writeFileSync(
    configPath,
    `${JSON.stringify(mergeConfig(baseAgentConfig({ workDir, recorder }), extra), null, 2)}\n`,
  );
  return {
    vm: { id, index, socketPath, workDir, configPath, shutdownLog, pid: undefined },
    proc: undefined,
    exited: undefined,
    expectExit: false,
    startedAt: 0,
    quickCrashes: 0,
    restartTimer: undefined,
    stderrTail: '',
  };
}

let pdeathsigSupport;

/** setpriv --pdeathsig makes an agent die with its parent (a crashed sim or jest worker). */
function parentDeathWrapper() {
  if (pdeathsigSupport === undefined) {
    const setpriv = '/usr/bin/setpriv';
    pdeathsigSupport =
      existsSync(setpriv) &&
      spawnSync(setpriv, ['--pdeathsig', 'TERM', '/bin/true'], { stdio: 'ignore' }).status === 0
        ? [setpriv, '--pdeathsig', 'TERM']
        : [];
  }
  return pdeathsigSupport;
}

class Sim {
  constructor(records, o) {
    this.records = records;
    this.o = o;
    this.byId = new Map(records.map((r) => [r.vm.id, r]));
    this.vms = records.map((r) => r.vm);
    this.dir = o.dir;
    this.stopping = undefined;
  }

  async startAll() {
    let next = 0;
    const worker = async () => {
      while (next < this.records.length && !this.stopping) {
        const rec = this.records[next++];
        await this.launch(rec, false);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.o.startConcurrency, this.records.length) }, worker),
    );
  }

  get(id) {
    const rec = this.byId.get(id);
    if (!rec) {
      throw new SimError(`no simulated VM ${JSON.stringify(id)}`);
    }
    return rec;
  }

  isRunning(id) {
    return this.get(id).proc !== undefined;
  }

  stderr(id) {
    return this.get(id).stderrTail;
  }

  shutdownCalls(id) {
    const text = readFileSync(this.get(id).vm.shutdownLog, 'utf8');
    return text.split('\n').filter((line) => line.length > 0);
  }

  async kill(id, signal = 'SIGTERM') {
    this.assertRunning();
    const rec = this.get(id);
    clearTimeout(rec.restartTimer);
    const proc = rec.proc;
    if (!proc) {
      return;
    }
    if (signal === 'SIGSTOP' || signal === 'SIGTSTP' || signal === 'SIGCONT') {
      proc.kill(signal);
      return;
    }
    rec.expectExit = true;
    proc.kill(signal);
    if (!(await exitsWithin(rec.exited, 5000)) && rec.proc === proc) {
      rec.expectExit = false;
      throw new SimError(`${id} (pid ${proc.pid}) did not exit within 5 s of ${signal}`);
    }
  }

  async restart(id) {
    this.assertRunning();
    const rec = this.get(id);
    clearTimeout(rec.restartTimer);
    await this.terminate(rec);
    await this.launch(rec, true);
    return rec.vm;
  }

  /** What runs as a process: one record per VM here, a host per group of VMs in HostSim. */
  processes() {
    return this.records;
  }

  stop() {
    this.stopping ??= (async () => {
      await Promise.all(this.processes().map((unit) => this.terminate(unit)));
      // SIGKILLed agents leave their socket files; a channel dir with stale sockets would
      // look like VMs whose QEMU died.
      for (const rec of this.records) {
        removeStaleSocket(rec.vm.socketPath);
      }
    })();
    return this.stopping;
  }

  assertRunning() {
    if (this.stopping) {
      throw new SimError('the simulated VMs were stopped');
    }
  }

  /** SIGTERM (and SIGCONT, in case it was stopped), SIGKILL after KILL_GRACE_MS. */
  async terminate(rec) {
    clearTimeout(rec.restartTimer);
    const proc = rec.proc;
    if (!proc) {
      return;
    }
    rec.expectExit = true;
    proc.kill('SIGTERM');
    proc.kill('SIGCONT');
    if (!(await exitsWithin(rec.exited, KILL_GRACE_MS))) {
      proc.kill('SIGKILL');
      await rec.exited;
    }
  }

  /**
   * Runs Node.js with `args`, dying with us when it can. Own process group: a Ctrl-C in the
   * terminal reaches the sim, which stops the agents in order, rather than every agent at once.
   */
  spawnNode(args, cwd) {
    // LQ_PROFILE_DIR=<dir>: a V8 CPU profile of every agent process (for benches; Node.js only).
    const profile =
      process.env.LQ_PROFILE_DIR && this.o.runtime === process.execPath
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.LQ_PROFILE_DIR}`]
        : [];
    const argv = [
      ...(this.o.dieWithParent ? parentDeathWrapper() : []),
      this.o.runtime,
      ...profile,
      ...args,
    ];
    return spawn(argv[0], argv.slice(1), {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
  }

  async launch(rec, restarted) {
    const { vm } = rec;
    await clearSocketPath(vm.socketPath);
    if (this.stopping) {
      throw new SimError('the simulated VMs were stopped');
    }
    const proc = this.spawnNode(
      [this.o.agentBundle, '--listen', vm.socketPath, '--config', vm.configPath],
      vm.workDir,
    );
    rec.proc = proc;
    rec.expectExit = false;
    rec.startedAt = Date.now();
    vm.pid = proc.pid;
    rec.exited = exitOf(proc, (code, signal, error) => this.onExit(rec, proc, code, signal, error));
    this.captureOutput(rec, proc);
    await this.waitForSocket(rec, proc);
    this.o.onEvent({ type: 'started', vm: { ...vm }, restarted });
  }

  captureOutput(rec, proc) {
    eachLine(proc, (line) => {
      rec.stderrTail = (rec.stderrTail + line + '\n').slice(-STDERR_TAIL_BYTES);
      this.o.onEvent({ type: 'output', vm: { ...rec.vm }, line });
    });
  }

  async waitForSocket(rec, proc) {
    const deadline = Date.now() + this.o.readyTimeoutMs;
    for (;;) {
      if (rec.proc !== proc) {
        await sleep(20); // let the last of its stderr arrive
        throw new SimError(
          `agent for ${rec.vm.id} exited before opening ${rec.vm.socketPath}:\n${rec.stderrTail.trim() || '(no output)'}`,
        );
      }
      if (isSocket(rec.vm.socketPath)) {
        return;
      }
      if (Date.now() > deadline) {
        await this.terminate(rec);
        throw new SimError(
          `agent for ${rec.vm.id} did not open ${rec.vm.socketPath} within ${this.o.readyTimeoutMs} ms:\n${rec.stderrTail.trim() || '(no output)'}`,
        );
      }
      await sleep(20);
    }
  }

  onExit(rec, proc, code, signal, error) {
    if (rec.proc !== proc) {
      return;
    }
    rec.proc = undefined;
    const expected = rec.expectExit || this.stopping !== undefined;
    this.o.onEvent(exitedEvent(rec.vm, code, signal, expected, error));
    if (expected || !this.o.restartOnExit) {
      return;
    }
    rec.quickCrashes = Date.now() - rec.startedAt < QUICK_CRASH_MS ? rec.quickCrashes + 1 : 0;
    if (rec.quickCrashes >= MAX_QUICK_CRASHES) {
      this.o.onEvent({ type: 'gave-up', vm: { ...rec.vm }, crashes: rec.quickCrashes });
      return;
    }
    rec.restartTimer = setTimeout(() => {
      if (this.stopping || rec.proc) {
        return;
      }
      this.launch(rec, true).catch((err) => {
        this.o.onEvent({ type: 'restart-failed', vm: { ...rec.vm }, error: String(err.message) });
      });
    }, RESTART_DELAY_MS);
  }
}

/**
 * Simulated VMs whose agents share processes, agentsPerProcess to each (the sim host): the same
 * agent code per VM, its own socket, config and work dir, but one Node.js process's memory for
 * many. A process runs or stops with all its VMs, so single VMs cannot be killed or restarted.
 */
class HostSim extends Sim {
  constructor(records, o) {
    super(records, o);
    this.hosts = [];
    for (let i = 0; i < records.length; i += o.agentsPerProcess) {
      const host = {
        index: this.hosts.length + 1,
        recs: records.slice(i, i + o.agentsPerProcess),
        proc: undefined,
        exited: undefined,
        expectExit: false,
        restartTimer: undefined,
        /** Everything the process printed, for errors about the whole process. */
        outputTail: '',
      };
      for (const rec of host.recs) {
        rec.host = host;
      }
      this.hosts.push(host);
    }
  }

  async startAll() {
    let next = 0;
    const worker = async () => {
      while (next < this.hosts.length && !this.stopping) {
        await this.launchHost(this.hosts[next++]);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.o.startConcurrency, this.hosts.length) }, worker),
    );
  }

  isRunning(id) {
    return this.get(id).host.proc !== undefined;
  }

  async kill(id) {
    this.get(id);
    throw new SimError(
      `cannot kill ${id} alone: its agent shares a process (agentsPerProcess > 1)`,
    );
  }

  async restart(id) {
    this.get(id);
    throw new SimError(
      `cannot restart ${id} alone: its agent shares a process (agentsPerProcess > 1)`,
    );
  }

  processes() {
    return this.hosts;
  }

  async launchHost(host) {
    for (const rec of host.recs) {
      await clearSocketPath(rec.vm.socketPath);
    }
    if (this.stopping) {
      throw new SimError('the simulated VMs were stopped');
    }
    const manifest = join(this.dir, '.sim', `host-${host.index}.json`);
    writeFileSync(
      manifest,
      `${JSON.stringify({
        agents: host.recs.map((r) => ({
          id: r.vm.id,
          listen: r.vm.socketPath,
          config: r.vm.configPath,
        })),
      })}\n`,
    );
    const proc = this.spawnNode([this.o.simHostBundle, '--manifest', manifest], this.dir);
    host.proc = proc;
    host.expectExit = false;
    for (const rec of host.recs) {
      rec.vm.pid = proc.pid;
    }
    host.exited = exitOf(proc, (code, signal, error) =>
      this.onHostExit(host, proc, code, signal, error),
    );
    this.captureHostOutput(host, proc);
    // Agents start one after another in the host: allow for all of them.
    const deadline = Date.now() + this.o.readyTimeoutMs + 50 * host.recs.length;
    for (const rec of host.recs) {
      for (;;) {
        if (host.proc !== proc) {
          await sleep(20);
          throw new SimError(
            `sim host ${host.index} (${host.recs.length} VMs) exited before ${rec.vm.id} opened ${rec.vm.socketPath}:\n${host.outputTail.trim() || '(no output)'}`,
          );
        }
        if (isSocket(rec.vm.socketPath)) {
          break;
        }
        if (Date.now() > deadline) {
          await this.terminate(host);
          throw new SimError(
            `sim host ${host.index} did not open ${rec.vm.socketPath} in time:\n${host.outputTail.trim() || '(no output)'}`,
          );
        }
        await sleep(20);
      }
    }
    for (const rec of host.recs) {
      this.o.onEvent({ type: 'started', vm: { ...rec.vm }, restarted: false });
    }
  }

  /** Lines that name a VM ("vm" in the JSON log line) go to it; the rest to all of the host's. */
  captureHostOutput(host, proc) {
    const byId = new Map(host.recs.map((r) => [r.vm.id, r]));
    eachLine(proc, (line) => {
      host.outputTail = (host.outputTail + line + '\n').slice(-STDERR_TAIL_BYTES);
      let target;
      try {
        target = byId.get(JSON.parse(line).vm);
      } catch {
        // not a JSON log line
      }
      for (const rec of target ? [target] : host.recs) {
        rec.stderrTail = (rec.stderrTail + line + '\n').slice(-STDERR_TAIL_BYTES);
        this.o.onEvent({ type: 'output', vm: { ...rec.vm }, line });
      }
    });
  }

  onHostExit(host, proc, code, signal, error) {
    if (host.proc !== proc) {
      return;
    }
    host.proc = undefined;
    const expected = host.expectExit || this.stopping !== undefined;
    for (const rec of host.recs) {
      this.o.onEvent(exitedEvent(rec.vm, code, signal, expected, error));
    }
  }
}

function exitedEvent(vm, code, signal, expected, error) {
  return {
    type: 'exited',
    vm: { ...vm },
    code,
    signal,
    expected,
    ...(error ? { error: error.message } : {}),
  };
}

/** The process's end, once: `onExit` runs first, also when it could not be spawned. */
function exitOf(proc, onExit) {
  return new Promise((resolveExit) => {
    let done = false;
    const finish = (code, signal, error) => {
      if (done) {
        return;
      }
      done = true;
      onExit(code, signal, error);
      resolveExit({ code, signal });
    };
    proc.once('exit', (code, signal) => finish(code, signal));
    proc.once('error', (err) => finish(null, null, err));
  });
}

/** Calls `onLine` with each line of the process's stdout and stderr (a last partial one too). */
function eachLine(proc, onLine) {
  for (const stream of [proc.stdout, proc.stderr]) {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(onLine);
    });
    stream.on('end', () => {
      if (partial) {
        onLine(partial);
      }
    });
  }
}

/** Whether `exited` settles within `ms` (the timer is cleared either way). */
async function exitsWithin(exited, ms) {
  let timer;
  const timedOut = new Promise((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(false), ms);
  });
  try {
    return await Promise.race([exited.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function isSocket(path) {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

function removeStaleSocket(path) {
  if (isSocket(path)) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

/**
 * Makes sure a fresh socket will be the one we wait for: refuses a path something else serves,
 * removes a stale socket file.
 */
async function clearSocketPath(path) {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) {
    throw new SimError(`${path} exists and is not a socket`);
  }
  if (await answers(path)) {
    throw new SimError(`${path} is served by another process (another sim running?)`);
  }
  removeStaleSocket(path);
}

function answers(path) {
  return new Promise((resolveAnswer) => {
    const socket = createConnection(path);
    const done = (ok) => {
      socket.destroy();
      resolveAnswer(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}
