import type { TelemetryReport } from '../api/types';
import { num, share } from './format';
import { ratesFrom } from './sparkline';

export interface Sample {
  at: number;
  report: TelemetryReport;
}

/** Samples kept for the charts (one per telemetry report). */
export const SERIES_MAX = 60;

export function appendSample(samples: readonly Sample[], sample: Sample): Sample[] {
  if (samples.length > 0 && samples[samples.length - 1]!.at >= sample.at) {
    // A repeat (the stream's first event is the stored report) or out of order.
    return [...samples];
  }
  const next = [...samples, sample];
  return next.length > SERIES_MAX ? next.slice(next.length - SERIES_MAX) : next;
}

/** The root filesystem, else the fullest one. */
export function mainDisk(r: TelemetryReport) {
  const disks = r.disks ?? [];
  return (
    disks.find((d) => d.mountPoint === '/') ??
    [...disks].sort(
      (a, b) =>
        (share(num(b.usedBytes), num(b.totalBytes)) ?? 0) -
        (share(num(a.usedBytes), num(a.totalBytes)) ?? 0),
    )[0]
  );
}

export interface Series {
  cpu: number[];
  memory: number[];
  disk: number[];
  rx: number[];
  tx: number[];
}

/** The chart series of a run of samples: CPU %, memory %, main disk %, network bytes/s. */
export function seriesOf(samples: readonly Sample[]): Series {
  const total = (r: TelemetryReport, k: 'rxBytes' | 'txBytes') =>
    (r.network ?? []).filter((n) => n.name !== 'lo').reduce((s, n) => s + (num(n[k]) ?? 0), 0);
  const disk = (r: TelemetryReport) => {
    const d = mainDisk(r);
    return d ? share(num(d.usedBytes), num(d.totalBytes)) : undefined;
  };
  const defined = (xs: Array<number | undefined>) => xs.filter((x): x is number => x !== undefined);
  return {
    cpu: defined(samples.map((s) => s.report.cpuPercent)),
    memory: defined(
      samples.map((s) => share(num(s.report.memory?.usedBytes), num(s.report.memory?.totalBytes))),
    ),
    disk: defined(samples.map((s) => disk(s.report))),
    rx: ratesFrom(samples.map((s) => ({ at: s.at, value: total(s.report, 'rxBytes') }))),
    tx: ratesFrom(samples.map((s) => ({ at: s.at, value: total(s.report, 'txBytes') }))),
  };
}
