import type { TelemetryTier } from '../config/env.schema.js';
import {
  Resolution,
  addSample,
  bucketOf,
  pointOf,
  type Point,
  type Sample,
} from './telemetry-points.js';

/**
 * Reports aggregated in memory into the points they belong to, until the next flush takes them
 * all: 1,000 VMs reporting every 10 s become one upsert per resolution and flush, not a row per
 * report. Bounded: at most `max` points wait; a report that would add one more is refused (its
 * VM's current points are still updated).
 */
export class TelemetryBuffer {
  private points = new Map<string, Point>();

  constructor(
    private readonly tiers: { fine: TelemetryTier; coarse: TelemetryTier },
    private readonly max: number,
  ) {}

  get size(): number {
    return this.points.size;
  }

  /** False when the report was refused, the buffer being full. */
  add(vmId: string, nodeId: string, s: Sample): boolean {
    const fine = keyOf(vmId, nodeId, Resolution.FINE, bucketOf(s.at, this.tiers.fine.stepSeconds));
    const coarse = keyOf(
      vmId,
      nodeId,
      Resolution.COARSE,
      bucketOf(s.at, this.tiers.coarse.stepSeconds),
    );
    const fresh = (this.points.has(fine) ? 0 : 1) + (this.points.has(coarse) ? 0 : 1);
    if (this.points.size + fresh > this.max) {
      return false;
    }
    this.merge(fine, vmId, nodeId, Resolution.FINE, this.tiers.fine.stepSeconds, s);
    this.merge(coarse, vmId, nodeId, Resolution.COARSE, this.tiers.coarse.stepSeconds, s);
    return true;
  }

  /** Every waiting point, ordered by key (so concurrent writers lock rows in one order); empties the buffer. */
  take(): Point[] {
    const taken = [...this.points.values()];
    this.points = new Map();
    return taken.sort(
      (a, b) =>
        compare(a.vmId, b.vmId) ||
        a.resolution - b.resolution ||
        a.bucketMs - b.bucketMs ||
        compare(a.nodeId, b.nodeId),
    );
  }

  /**
   * Puts back points a failed flush could not write, merged with what arrived since, as far as
   * the bound allows; answers how many were dropped.
   */
  restore(points: Point[]): number {
    let dropped = 0;
    for (const p of points) {
      const key = keyOf(p.vmId, p.nodeId, p.resolution, p.bucketMs);
      const now = this.points.get(key);
      if (now) {
        mergePoints(now, p);
      } else if (this.points.size < this.max) {
        this.points.set(key, p);
      } else {
        dropped += 1;
      }
    }
    return dropped;
  }

  private merge(
    key: string,
    vmId: string,
    nodeId: string,
    resolution: Resolution,
    stepSeconds: number,
    s: Sample,
  ): void {
    const p = this.points.get(key);
    if (p) {
      addSample(p, nodeId, s);
    } else {
      this.points.set(key, pointOf(vmId, nodeId, resolution, stepSeconds, s));
    }
  }
}

// Per reporting node too: a node that does not own the VM gets points of its own, which the
// upsert then leaves out, instead of mixing its samples into the owner's.
function keyOf(vmId: string, nodeId: string, resolution: Resolution, bucketMs: number): string {
  return `${resolution}|${vmId}|${nodeId}|${bucketMs}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Merges `b` into `a`, two partial points of one VM's step (as the upsert does). */
export function mergePoints(a: Point, b: Point): void {
  a.samples += b.samples;
  a.cpuSum += b.cpuSum;
  a.cpuMax = Math.max(a.cpuMax, b.cpuMax);
  a.load1Sum += b.load1Sum;
  a.memUsedSum += b.memUsedSum;
  if (b.lastAt >= a.lastAt) {
    a.nodeId = b.nodeId;
    a.memTotal = b.memTotal;
    a.diskUsed = b.diskUsed;
    a.diskTotal = b.diskTotal;
    a.diskMaxPercent = b.diskMaxPercent;
    a.rxLast = b.rxLast;
    a.txLast = b.txLast;
    a.lastAt = b.lastAt;
  }
  if (b.firstAt < a.firstAt) {
    a.rxFirst = b.rxFirst;
    a.txFirst = b.txFirst;
    a.firstAt = b.firstAt;
  }
}
