import type { TelemetryReport } from '@lq/proto';

/** The two resolutions of the history (the `resolution` column). */
export enum Resolution {
  FINE = 1,
  COARSE = 2,
}

/** What one report contributes to a point. Byte counts are Numbers: exact below 8 PiB. */
export interface Sample {
  /** When the node daemon took the report (ms since the epoch). */
  at: number;
  cpuPercent: number;
  load1: number;
  memUsed: number;
  memTotal: number;
  /** Over every filesystem the agent reports. */
  diskUsed: number;
  diskTotal: number;
  /** The fullest filesystem's use, 0–100. */
  diskMaxPercent: number;
  /** Received and sent bytes since boot, over every interface but loopback. */
  rxBytes: number;
  txBytes: number;
}

/**
 * One point: the samples of one VM within one step. Gauges that are averaged keep a sum (the
 * average is sum / samples, and two partial points of one step merge by adding); the others
 * keep the latest sample's value. Network counters keep the first and last reading, so a
 * point's rate is (last − first) / (last_at − first_at), with no state kept between points.
 */
export interface Point {
  vmId: string;
  /** The node that reported it: only the VM's owner's points are stored. */
  nodeId: string;
  resolution: Resolution;
  /** Start of the step (ms since the epoch), a multiple of the step. */
  bucketMs: number;
  stepSeconds: number;
  samples: number;
  cpuSum: number;
  cpuMax: number;
  load1Sum: number;
  memUsedSum: number;
  memTotal: number;
  diskUsed: number;
  diskTotal: number;
  diskMaxPercent: number;
  rxFirst: number;
  txFirst: number;
  rxLast: number;
  txLast: number;
  firstAt: number;
  lastAt: number;
}

export function sampleOf(report: TelemetryReport, at: number): Sample {
  let diskUsed = 0;
  let diskTotal = 0;
  let diskMaxPercent = 0;
  for (const d of report.disks) {
    const total = Number(d.totalBytes);
    const used = Number(d.usedBytes);
    if (total > 0) {
      diskUsed += used;
      diskTotal += total;
      diskMaxPercent = Math.max(diskMaxPercent, Math.min(100, (used / total) * 100));
    }
  }
  let rxBytes = 0;
  let txBytes = 0;
  for (const n of report.network) {
    if (n.name !== 'lo') {
      rxBytes += Number(n.rxBytes);
      txBytes += Number(n.txBytes);
    }
  }
  return {
    at,
    cpuPercent: finite(report.cpuPercent),
    load1: finite(report.load1),
    memUsed: Number(report.memory?.usedBytes ?? 0n),
    memTotal: Number(report.memory?.totalBytes ?? 0n),
    diskUsed,
    diskTotal,
    diskMaxPercent,
    rxBytes,
    txBytes,
  };
}

function finite(n: number): number {
  return Number.isFinite(n) ? n : 0;
}

/** The start of the step `at` falls in. */
export function bucketOf(at: number, stepSeconds: number): number {
  const step = stepSeconds * 1000;
  return Math.floor(at / step) * step;
}

/** A point of one sample. */
export function pointOf(
  vmId: string,
  nodeId: string,
  resolution: Resolution,
  stepSeconds: number,
  s: Sample,
): Point {
  return {
    vmId,
    nodeId,
    resolution,
    bucketMs: bucketOf(s.at, stepSeconds),
    stepSeconds,
    samples: 1,
    cpuSum: s.cpuPercent,
    cpuMax: s.cpuPercent,
    load1Sum: s.load1,
    memUsedSum: s.memUsed,
    memTotal: s.memTotal,
    diskUsed: s.diskUsed,
    diskTotal: s.diskTotal,
    diskMaxPercent: s.diskMaxPercent,
    rxFirst: s.rxBytes,
    txFirst: s.txBytes,
    rxLast: s.rxBytes,
    txLast: s.txBytes,
    firstAt: s.at,
    lastAt: s.at,
  };
}

/**
 * Adds a sample to a point of its step (the same merge the upsert does with two partial points,
 * telemetry.repository.ts), whatever order samples arrive in.
 */
export function addSample(p: Point, nodeId: string, s: Sample): void {
  p.samples += 1;
  p.cpuSum += s.cpuPercent;
  p.cpuMax = Math.max(p.cpuMax, s.cpuPercent);
  p.load1Sum += s.load1;
  p.memUsedSum += s.memUsed;
  if (s.at >= p.lastAt) {
    p.nodeId = nodeId;
    p.memTotal = s.memTotal;
    p.diskUsed = s.diskUsed;
    p.diskTotal = s.diskTotal;
    p.diskMaxPercent = s.diskMaxPercent;
    p.rxLast = s.rxBytes;
    p.txLast = s.txBytes;
    p.lastAt = s.at;
  }
  if (s.at < p.firstAt) {
    p.rxFirst = s.rxBytes;
    p.txFirst = s.txBytes;
    p.firstAt = s.at;
  }
}

/** Bytes per second over a point, or null when it cannot tell (one sample, a counter reset). */
export function rateOf(
  first: number,
  last: number,
  firstAt: number,
  lastAt: number,
): number | null {
  const seconds = (lastAt - firstAt) / 1000;
  return seconds > 0 && last >= first ? (last - first) / seconds : null;
}
