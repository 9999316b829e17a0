import { describe, expect, it } from '@jest/globals';
import { TelemetryBuffer } from './telemetry-buffer.js';
import { Resolution, rateOf, type Sample } from './telemetry-points.js';

const TIERS = {
  fine: { stepSeconds: 60, retentionSeconds: 86_400 },
  coarse: { stepSeconds: 900, retentionSeconds: 30 * 86_400 },
};
const T0 = Date.UTC(2026, 11, 5, 10, 0, 0);

function sample(at: number, over: Partial<Sample> = {}): Sample {
  return {
    at,
    cpuPercent: 10,
    load1: 1,
    memUsed: 100,
    memTotal: 1000,
    diskUsed: 10,
    diskTotal: 100,
    diskMaxPercent: 10,
    rxBytes: 0,
    txBytes: 0,
    ...over,
  };
}

describe('TelemetryBuffer', () => {
  it('should fold the reports of one step into one point per resolution', () => {
    const b = new TelemetryBuffer(TIERS, 100);
    expect(b.add('vm-1', 'n', sample(T0 + 20_000, { cpuPercent: 30, rxBytes: 3000 }))).toBe(true);
    expect(b.add('vm-1', 'n', sample(T0 + 10_000, { cpuPercent: 10, rxBytes: 1000 }))).toBe(true);
    expect(b.add('vm-1', 'n', sample(T0 + 70_000, { cpuPercent: 50, rxBytes: 9000 }))).toBe(true);
    const points = b.take();
    expect(b.size).toBe(0);
    expect(points.map((p) => [p.resolution, p.bucketMs - T0, p.samples])).toEqual([
      [Resolution.FINE, 0, 2],
      [Resolution.FINE, 60_000, 1],
      [Resolution.COARSE, 0, 3],
    ]);
    const [minute, , quarter] = points;
    expect([minute!.cpuSum, minute!.cpuMax, minute!.rxFirst, minute!.rxLast]).toEqual([
      40, 30, 1000, 3000,
    ]);
    // Out of order: the earliest reading is the first, the latest the last.
    expect(rateOf(minute!.rxFirst, minute!.rxLast, minute!.firstAt, minute!.lastAt)).toBe(200);
    expect([quarter!.rxFirst, quarter!.rxLast, quarter!.cpuMax]).toEqual([1000, 9000, 50]);
  });

  it('should keep another node’s reports about a VM apart from its owner’s', () => {
    const b = new TelemetryBuffer(TIERS, 100);
    b.add('vm-1', 'owner', sample(T0, { cpuPercent: 10 }));
    b.add('vm-1', 'intruder', sample(T0 + 1000, { cpuPercent: 99 }));
    const fine = b.take().filter((p) => p.resolution === Resolution.FINE);
    expect(fine.map((p) => [p.nodeId, p.samples, p.cpuMax])).toEqual([
      ['intruder', 1, 99],
      ['owner', 1, 10],
    ]);
  });

  it('should refuse a report that needs a point more than the bound, and keep updating the current ones', () => {
    const b = new TelemetryBuffer(TIERS, 4);
    expect(b.add('vm-1', 'n', sample(T0))).toBe(true);
    expect(b.add('vm-2', 'n', sample(T0))).toBe(true);
    expect(b.size).toBe(4);
    expect(b.add('vm-3', 'n', sample(T0))).toBe(false);
    expect(b.add('vm-1', 'n', sample(T0 + 10_000))).toBe(true);
    expect(b.size).toBe(4);
  });

  it('should merge points a failed write puts back with those that arrived since, within the bound', () => {
    const b = new TelemetryBuffer(TIERS, 4);
    b.add('vm-1', 'n', sample(T0, { cpuPercent: 10 }));
    const failed = b.take();
    b.add('vm-1', 'n', sample(T0 + 10_000, { cpuPercent: 20 }));
    b.add('vm-2', 'n', sample(T0 + 60_000));
    expect(b.size).toBe(4);
    expect(b.restore(failed)).toBe(0);
    const fine1 = b.take().find((p) => p.vmId === 'vm-1' && p.resolution === Resolution.FINE)!;
    expect([fine1.samples, fine1.cpuSum, fine1.firstAt]).toEqual([2, 30, T0]);

    const full = new TelemetryBuffer(TIERS, 2);
    full.add('vm-9', 'n', sample(T0));
    expect(full.restore(failed)).toBe(2);
  });

  it('should give no rate for one reading or a counter reset', () => {
    expect(rateOf(5, 5, T0, T0)).toBeNull();
    expect(rateOf(5000, 10, T0, T0 + 10_000)).toBeNull();
  });
});
