// The Windows guest (WINDOWS.md): what has a plain command-line route is implemented here —
// the channel (the virtio-serial port \\.\Global\org.limiquantix.agent.0, opened as a file),
// exec (CreateProcess command lines, cmd.exe for `command`, taskkill /T /F on timeout), files
// under drive-letter roots (files/windows-write-target.ts; owners from the ACLs,
// windows/windows-owners.ts), facts and telemetry (os module + PowerShell CIM), shutdown.exe,
// w32tm / Set-Date, net user. What needs Windows APIs the agent does not call yet is refused
// with UNSUPPORTED, naming the API.
import * as os from 'node:os';
import { create } from '@bufbuild/protobuf';
import {
  ErrorCode,
  MemoryStatsSchema,
  OsInfoSchema,
  TelemetryReportSchema,
  type OsInfo,
  type SetUserPasswordRequest,
  type TelemetryReport,
} from '@lq/proto';
import { VirtioDeviceChannel } from '../channel/virtio-device.channel.js';
import type { AgentConfig } from '../config/agent-config.js';
import { AgentOpError } from '../errors.js';
import { PathPolicy, WINDOWS_PATH_RULES } from '../files/path-policy.js';
import type { Logger } from '../logger.js';
import { describeResult, runCommand, succeeded } from '../system/run-command.js';
import { interfaceFilter, listInterfaces } from '../telemetry/system-info.js';
import type { ClockControl, GuestPlatform, TelemetrySampler } from './platform.js';
import {
  netUserArgv,
  setClockArgv,
  shutdownArgv,
  timeResyncArgv,
} from './windows/windows-commands.js';
import {
  WINDOWS_FACTS_SCRIPT,
  parseWindowsFacts,
  type WindowsFacts,
} from './windows/windows-facts.js';
import { WINDOWS_DEFAULTS } from './platform-defaults.js';
import { WindowsProcessRunner } from './windows/windows-process-runner.js';
import { WindowsOwners, ownerLookupOptions } from './windows/windows-owners.js';

const COMMAND_TIMEOUT_MS = 30_000;
/** Disks change rarely and CIM costs a PowerShell start: facts are read at most this often. */
const FACTS_TTL_MS = 60_000;

/** Why each operation is refused on Windows; WINDOWS.md says the same at length. */
export const WINDOWS_UNSUPPORTED = {
  quiesce:
    'filesystem freeze on Windows needs a VSS requestor (IVssBackupComponents, VSS_BT_COPY, DoSnapshotSet with the writers frozen); not implemented (WINDOWS.md)',
  thaw: 'nothing is frozen: quiesce is not supported on Windows guests (WINDOWS.md)',
  networkConfigure:
    'network.configure on Windows needs netsh/New-NetIPAddress with a rollback; not implemented (WINDOWS.md)',
  networkConfirm: 'network.configure is not supported on Windows guests (WINDOWS.md)',
  getFsInfo:
    'fs.info reads the mount table (/proc/self/mounts) on Linux; the Windows equivalent (Win32_Volume or GetVolumeInformationW per volume) is not implemented; fixed disks are in telemetry (WINDOWS.md)',
  agentUpdate:
    'self-update on Windows guests is not supported yet: a running .exe cannot be replaced in place; install the new MSI (WINDOWS.md)',
} as const;

/** Runs the CIM script; its JSON, parsed. */
async function readFacts(config: AgentConfig): Promise<WindowsFacts> {
  const r = await runCommand(
    [config.windows.powershell, '-NoProfile', '-NonInteractive', '-Command', WINDOWS_FACTS_SCRIPT],
    { timeoutMs: COMMAND_TIMEOUT_MS, env: { ...process.env } as Record<string, string> },
  );
  if (!succeeded(r)) {
    throw new Error(
      `PowerShell CIM query failed (${describeResult(r)}): ${r.stderr.slice(0, 200)}`,
    );
  }
  return parseWindowsFacts(r.stdout, os.machine());
}

/** The facts, read again after FACTS_TTL_MS; a failed read is not kept. */
function cachedFacts(config: AgentConfig): () => Promise<WindowsFacts> {
  let cached: { at: number; value: Promise<WindowsFacts> } | undefined;
  return () => {
    if (cached === undefined || Date.now() - cached.at > FACTS_TTL_MS) {
      const entry = { at: Date.now(), value: readFacts(config) };
      cached = entry;
      entry.value.catch(() => {
        if (cached === entry) {
          cached = undefined;
        }
      });
    }
    return cached.value;
  };
}

/** CPU from os.cpus() deltas, memory and uptime from os, disks and addresses from CIM. */
class WindowsTelemetry implements TelemetrySampler {
  private previous: { idle: number; total: number } | undefined;
  private readonly excluded: (name: string) => boolean;

  constructor(
    private readonly facts: () => Promise<WindowsFacts>,
    config: AgentConfig,
    private readonly log?: Logger,
  ) {
    this.excluded = interfaceFilter(config.network.exclude_interfaces);
  }

  async sample(): Promise<TelemetryReport> {
    const cpus = os.cpus();
    let idle = 0;
    let total = 0;
    for (const c of cpus) {
      idle += c.times.idle;
      total += c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    }
    const prev = this.previous;
    this.previous = { idle, total };
    const cpuPercent =
      prev && total > prev.total ? 100 * (1 - (idle - prev.idle) / (total - prev.total)) : 0;
    let disks: WindowsFacts['disks'] = [];
    try {
      disks = (await this.facts()).disks;
    } catch (err) {
      this.log?.warn('telemetry: disks unavailable', { error: (err as Error).message });
    }
    const totalMem = BigInt(os.totalmem());
    const free = BigInt(os.freemem());
    return create(TelemetryReportSchema, {
      cpuCount: cpus.length,
      cpuPercent,
      memory: create(MemoryStatsSchema, {
        totalBytes: totalMem,
        availableBytes: free,
        usedBytes: totalMem > free ? totalMem - free : 0n,
      }),
      disks,
      interfaces: listInterfaces(this.excluded),
      uptimeSeconds: os.uptime(),
    });
  }
}

class WindowsClock implements ClockControl {
  constructor(private readonly config: AgentConfig) {}

  async syncByService(): Promise<string | undefined> {
    const r = await runCommand(timeResyncArgv(this.config.windows.w32tm), {
      timeoutMs: COMMAND_TIMEOUT_MS,
      env: { ...process.env } as Record<string, string>,
    });
    return succeeded(r) ? 'w32time' : undefined;
  }

  setClock(epochMs: number) {
    return runCommand(setClockArgv(this.config.windows.powershell, epochMs), {
      timeoutMs: COMMAND_TIMEOUT_MS,
      env: { ...process.env } as Record<string, string>,
    });
  }

  // Windows writes the RTC itself when the clock is set.
  syncRtc() {
    return undefined;
  }
}

export const windowsPlatform: GuestPlatform = {
  os: 'windows',
  defaultConfigPath: WINDOWS_DEFAULTS.configPath,
  defaultDevicePath: WINDOWS_DEFAULTS.devicePath,
  defaults: (config) => WINDOWS_DEFAULTS.apply(config),
  openDevice: (path) => new VirtioDeviceChannel(path),
  unsupported: () => ({ ...WINDOWS_UNSUPPORTED }),
  execRunner: (config, _users, log) => new WindowsProcessRunner(config, log),
  pathPolicy: (config) =>
    new PathPolicy(config.files.roots, [], WINDOWS_PATH_RULES(config.windows.allow_unc_paths)),
  fileOwners: (config, log) =>
    config.windows.owner_lookup
      ? new WindowsOwners(ownerLookupOptions(config), log)
      : { ownersOf: (paths) => Promise.resolve(paths.map(() => ({ owner: '', group: '' }))) },
  shutdownArgv(config, mode) {
    // HALT is refused; the others are the configured commands (a double in tests).
    const argv = shutdownArgv(config.windows.shutdown, mode);
    return argv[1] === '/r' ? config.commands.reboot : config.commands.poweroff;
  },
  clock: (config) => new WindowsClock(config),
  accounts: (config) => ({
    async setPassword(request: SetUserPasswordRequest) {
      if (request.secret.case !== 'password') {
        throw new AgentOpError(
          request.secret.case === undefined ? ErrorCode.INVALID_REQUEST : ErrorCode.UNSUPPORTED,
          request.secret.case === undefined
            ? 'give password'
            : 'crypted_hash is a crypt(3) hash, which Windows accounts cannot take; give password',
        );
      }
      if (request.limits !== undefined) {
        // Run-as limits name Unix users and "non-root"; Windows SIDs and the Administrators
        // group are not mapped to them yet, so a limited caller is refused, not let through.
        throw new AgentOpError(
          ErrorCode.UNSUPPORTED,
          'run-as limits cannot be judged on Windows accounts yet (WINDOWS.md); only a caller without limits may set passwords there',
        );
      }
      const argv = netUserArgv(config.windows.net, request.username, request.secret.value);
      const r = await runCommand(argv, {
        timeoutMs: COMMAND_TIMEOUT_MS,
        env: { ...process.env } as Record<string, string>,
      });
      if (!succeeded(r)) {
        // net.exe's messages name the account, never the password (it is not echoed).
        const message = `${r.stdout}\n${r.stderr}`.trim().split(/\r?\n/)[0]?.slice(0, 200) ?? '';
        throw new AgentOpError(
          /user name could not be found/i.test(r.stdout + r.stderr)
            ? ErrorCode.USER_NOT_FOUND
            : ErrorCode.EXEC_FAILED,
          `net user failed for ${request.username} (${describeResult(r)}): ${message}`,
        );
      }
    },
  }),
  osInfo(config, log?: Logger): () => Promise<OsInfo> {
    const facts = cachedFacts(config);
    // AgentReady must not wait on PowerShell: without it (removed, locked down, Wine) the facts
    // are what Node's os module knows.
    return () =>
      facts().then(
        (f) => f.os,
        (err: Error) => {
          log?.warn('os facts from CIM unavailable', { error: err.message });
          return create(OsInfoSchema, {
            name: 'Windows',
            id: 'windows',
            version: os.release(),
            prettyName: os.version(),
            kernelRelease: os.release(),
            kernelVersion: os.version(),
            arch: os.machine(),
          });
        },
      );
  },
  telemetry: (config, log) => new WindowsTelemetry(cachedFacts(config), config, log),
};
