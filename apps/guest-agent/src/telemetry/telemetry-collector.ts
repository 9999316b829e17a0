import { readdir, readFile, statfs } from 'node:fs/promises';
import * as os from 'node:os';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  type DiskUsage,
  DiskUsageSchema,
  type InterfaceCounters,
  InterfaceCountersSchema,
  MemoryStatsSchema,
  type TelemetryReport,
  TelemetryReportSchema,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { interfaceFilter, listInterfaces, type NetworkInterfacesSource } from './system-info.js';

export interface FsStats {
  bsize: bigint;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
}

/** Seams for tests; production uses fs.statfs and os.networkInterfaces. */
export interface TelemetryDeps {
  statfs(path: string): Promise<FsStats>;
  networkInterfaces: NetworkInterfacesSource;
  /** A statfs slower than this is left out of the report (a hung mount must not stall it). */
  statfsTimeoutMs: number;
}

// Pseudo and in-memory filesystems: no disk behind them.
const PSEUDO_FS = new Set([
  'autofs',
  'binfmt_misc',
  'bpf',
  'cgroup',
  'cgroup2',
  'configfs',
  'debugfs',
  'devpts',
  'devtmpfs',
  'efivarfs',
  'fusectl',
  'hugetlbfs',
  'mqueue',
  'nsfs',
  'proc',
  'pstore',
  'ramfs',
  'rpc_pipefs',
  'securityfs',
  'selinuxfs',
  'squashfs',
  'sysfs',
  'tmpfs',
  'tracefs',
]);

// Remote or userspace filesystems: not the guest's disks, and statfs on them can hang.
const REMOTE_FS = new Set([
  '9p',
  'afs',
  'ceph',
  'cifs',
  'glusterfs',
  'lustre',
  'ncpfs',
  'nfs',
  'nfs4',
  'smb3',
  'smbfs',
  'sshfs',
  'virtiofs',
]);

const PID = /^\d+$/;

export function isLocalDiskFs(fsType: string): boolean {
  return !PSEUDO_FS.has(fsType) && !REMOTE_FS.has(fsType) && !fsType.startsWith('fuse');
}

interface CpuTimes {
  total: number;
  idle: number;
}

interface Mount {
  device: string;
  mountPoint: string;
  fsType: string;
}

/** /proc/self/mounts escapes space, tab, newline and backslash as octal. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMounts(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const [device, mountPoint, fsType] = line.split(' ');
    if (device && mountPoint && fsType) {
      out.push({
        device: unescapeMountField(device),
        mountPoint: unescapeMountField(mountPoint),
        fsType,
      });
    }
  }
  return out;
}

/** First `cpu` line: the busy and idle jiffies summed over all CPUs; plus the CPU count. */
export function parseProcStat(text: string): { times: CpuTimes; cpuCount: number } {
  let times: CpuTimes = { total: 0, idle: 0 };
  let cpuCount = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) {
      continue;
    }
    if (line.startsWith('cpu ')) {
      // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
      // already counted in user and nice.
      const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
      const total = f.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
      times = { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
    } else {
      cpuCount++;
    }
  }
  return { times, cpuCount };
}

/** kB lines of /proc/meminfo, in bytes. */
export function parseMeminfo(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const m = /^([\w()]+):\s+(\d+)( kB)?/.exec(line);
    if (m?.[1] && m[2]) {
      out.set(m[1], BigInt(m[2]) * (m[3] ? 1024n : 1n));
    }
  }
  return out;
}

export function parseNetDev(
  text: string,
  excluded: (name: string) => boolean,
): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) {
      continue;
    }
    const name = line.slice(0, colon).trim();
    if (name === '' || excluded(name)) {
      continue;
    }
    // rx: bytes packets errs drop fifo frame compressed multicast, then tx: bytes packets ...
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (f.length < 10) {
      continue;
    }
    const n = (i: number): bigint => (/^\d+$/.test(f[i] ?? '') ? BigInt(f[i] as string) : 0n);
    out.push(
      create(InterfaceCountersSchema, {
        name,
        rxBytes: n(0),
        rxPackets: n(1),
        txBytes: n(8),
        txPackets: n(9),
      }),
    );
  }
  return out;
}

/**
 * Samples guest metrics for TelemetryReport from procfs (config.system.proc_dir) and statfs. It
 * runs every telemetry_interval_ms in every VM, so it reads a handful of small files, one
 * directory listing and one statfs per disk, all concurrently; a failing section is left empty
 * and logged once.
 */
export class TelemetryCollector {
  private readonly proc: string;
  private readonly excluded: (name: string) => boolean;
  private readonly deps: TelemetryDeps;
  private previousCpu: CpuTimes | undefined;
  private readonly statfsInFlight = new Set<string>();
  private readonly warned = new Set<string>();

  constructor(
    config: AgentConfig,
    private readonly log?: Logger,
    deps: Partial<TelemetryDeps> = {},
  ) {
    this.proc = config.system.proc_dir.replace(/\/+$/, '');
    this.excluded = interfaceFilter(config.network.exclude_interfaces);
    this.deps = {
      statfs: deps.statfs ?? ((path) => statfs(path, { bigint: true })),
      networkInterfaces: deps.networkInterfaces ?? os.networkInterfaces,
      statfsTimeoutMs: deps.statfsTimeoutMs ?? 2000,
    };
  }

  async sample(): Promise<TelemetryReport> {
    const [stat, loadavg, meminfo, mounts, netDev, uptime, processCount] = await Promise.all([
      this.read('stat'),
      this.read('loadavg'),
      this.read('meminfo'),
      this.read('self/mounts'),
      this.read('net/dev'),
      this.read('uptime'),
      this.countProcesses(),
    ]);
    const report: MessageInitShape<typeof TelemetryReportSchema> = {
      processCount,
      network: this.guard('net/dev', () => parseNetDev(netDev, this.excluded)) ?? [],
      interfaces:
        this.guard('interfaces', () =>
          listInterfaces(this.excluded, this.deps.networkInterfaces),
        ) ?? [],
      disks: await this.disks(mounts),
    };

    const cpu = parseProcStat(stat);
    report.cpuCount = cpu.cpuCount;
    report.cpuPercent = this.cpuPercent(cpu.times);

    const [l1, l5, l15] = loadavg.split(' ').map(Number);
    report.load1 = l1 || 0;
    report.load5 = l5 || 0;
    report.load15 = l15 || 0;

    const mem = parseMeminfo(meminfo);
    const total = mem.get('MemTotal') ?? 0n;
    const available =
      mem.get('MemAvailable') ??
      // Kernels before 3.14 have no MemAvailable; this is what free(1) estimated then.
      (mem.get('MemFree') ?? 0n) + (mem.get('Buffers') ?? 0n) + (mem.get('Cached') ?? 0n);
    const swapTotal = mem.get('SwapTotal') ?? 0n;
    const swapFree = mem.get('SwapFree') ?? 0n;
    report.memory = create(MemoryStatsSchema, {
      totalBytes: total,
      availableBytes: available,
      usedBytes: total > available ? total - available : 0n,
      swapTotalBytes: swapTotal,
      swapUsedBytes: swapTotal > swapFree ? swapTotal - swapFree : 0n,
    });

    report.uptimeSeconds = Number(uptime.split(' ')[0]) || 0;
    return create(TelemetryReportSchema, report);
  }

  private cpuPercent(now: CpuTimes): number {
    if (now.total === 0) {
      return 0;
    }
    const prev = this.previousCpu;
    this.previousCpu = now;
    if (!prev) {
      return 0;
    }
    const total = now.total - prev.total;
    const busy = total - (now.idle - prev.idle);
    if (total <= 0) {
      return 0;
    }
    return Math.min(100, Math.max(0, (busy / total) * 100));
  }

  private async disks(mountsText: string): Promise<DiskUsage[]> {
    const seen = new Set<string>();
    const mounts = (this.guard('self/mounts', () => parseMounts(mountsText)) ?? []).filter((m) => {
      if (!isLocalDiskFs(m.fsType) || seen.has(m.device)) {
        return false;
      }
      seen.add(m.device);
      return true;
    });
    const usages = await Promise.all(mounts.map((m) => this.diskUsage(m)));
    return usages.filter((u): u is DiskUsage => u !== undefined);
  }

  private async diskUsage(m: Mount): Promise<DiskUsage | undefined> {
    // A statfs still running from an earlier sample is not started again, so a hung mount
    // holds at most one libuv thread.
    if (this.statfsInFlight.has(m.mountPoint)) {
      return undefined;
    }
    this.statfsInFlight.add(m.mountPoint);
    const call = this.deps.statfs(m.mountPoint).finally(() => {
      this.statfsInFlight.delete(m.mountPoint);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.deps.statfsTimeoutMs).unref();
    });
    try {
      const st = await Promise.race([call, timeout]);
      if (!st) {
        this.warnOnce(`statfs ${m.mountPoint}`, 'statfs timed out; mount left out of telemetry', {
          mountPoint: m.mountPoint,
        });
        return undefined;
      }
      return create(DiskUsageSchema, {
        mountPoint: m.mountPoint,
        device: m.device,
        fsType: m.fsType,
        totalBytes: st.blocks * st.bsize,
        usedBytes: (st.blocks - st.bfree) * st.bsize,
        availableBytes: st.bavail * st.bsize,
      });
    } catch (err) {
      this.warnOnce(`statfs ${m.mountPoint}`, 'statfs failed; mount left out of telemetry', {
        mountPoint: m.mountPoint,
        error: String(err),
      });
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  private async countProcesses(): Promise<number> {
    try {
      let count = 0;
      for (const name of await readdir(this.proc)) {
        if (PID.test(name)) {
          count++;
        }
      }
      return count;
    } catch (err) {
      this.warnOnce('processes', `cannot list ${this.proc}`, { error: String(err) });
      return 0;
    }
  }

  private async read(name: string): Promise<string> {
    try {
      return await readFile(`${this.proc}/${name}`, 'latin1');
    } catch (err) {
      this.warnOnce(name, `cannot read ${this.proc}/${name}; left out of telemetry`, {
        error: String(err),
      });
      return '';
    }
  }

  private guard<T>(section: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.warnOnce(section, `telemetry section ${section} failed`, { error: String(err) });
      return undefined;
    }
  }

  // Every 10 s in every VM: one warning per cause is enough.
  private warnOnce(key: string, msg: string, fields: Record<string, unknown>): void {
    if (!this.warned.has(key)) {
      this.warned.add(key);
      this.log?.warn(msg, fields);
    }
  }
}
