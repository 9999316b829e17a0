import type { TelemetryView } from '@lq/api';
import { share } from './format';
import { ratesFrom } from './sparkline';

export interface Sample {
  at: number;
  report: TelemetryView;
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
export function mainDisk(r: TelemetryView) {
  return (
    r.disks.find((d) => d.mount_point === '/') ??
    [...r.disks].sort(
      (a, b) =>
        (share(b.used_bytes, b.total_bytes) ?? 0) - (share(a.used_bytes, a.total_bytes) ?? 0),
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
  const total = (r: TelemetryView, k: 'rx_bytes' | 'tx_bytes') =>
    r.network.filter((n) => n.name !== 'lo').reduce((s, n) => s + n[k], 0);
  const disk = (r: TelemetryView) => {
    const d = mainDisk(r);
    return d ? share(d.used_bytes, d.total_bytes) : undefined;
  };
  const defined = (xs: Array<number | undefined>) => xs.filter((x): x is number => x !== undefined);
  return {
    cpu: samples.map((s) => s.report.cpu_percent),
    memory: defined(
      samples.map((s) => share(s.report.memory?.used_bytes, s.report.memory?.total_bytes)),
    ),
    disk: defined(samples.map((s) => disk(s.report))),
    rx: ratesFrom(samples.map((s) => ({ at: s.at, value: total(s.report, 'rx_bytes') }))),
    tx: ratesFrom(samples.map((s) => ({ at: s.at, value: total(s.report, 'tx_bytes') }))),
  };
}
