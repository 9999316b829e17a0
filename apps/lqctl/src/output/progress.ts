// Progress on a terminal: one line redrawn in place (stderr), at most ~10 times a second.
// Off a terminal, callers print plain lines instead.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[u]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  if (ms < 60_000) {
    return `${(ms / 1000).toFixed(1)} s`;
  }
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** "[#######-------]" for a fraction 0..1 in `width` cells (brackets included). */
export function renderBar(fraction: number, width: number): string {
  const inner = Math.max(1, width - 2);
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(f * inner);
  return `[${'#'.repeat(full)}${'-'.repeat(inner - full)}]`;
}

/** Execution states still on their way; everything else in a run summary is done. */
const UNFINISHED = new Set(['queued', 'pending', 'running', 'started']);

export interface RunProgress {
  total: number;
  done: number;
  running: number;
  queued: number;
  /** Done but not succeeded. */
  failed: number;
  succeeded: number;
}

/** Counts from a run's summary (VMs by state). */
export function runProgress(summary: Readonly<Record<string, number>>): RunProgress {
  const p: RunProgress = { total: 0, done: 0, running: 0, queued: 0, failed: 0, succeeded: 0 };
  for (const [state, n] of Object.entries(summary)) {
    p.total += n;
    if (state === 'running' || state === 'pending' || state === 'started') {
      p.running += n;
    } else if (state === 'queued') {
      p.queued += n;
    }
    if (!UNFINISHED.has(state)) {
      p.done += n;
      if (state === 'succeeded') {
        p.succeeded += n;
      } else {
        p.failed += n;
      }
    }
  }
  return p;
}

/** "3 succeeded, 1 failed, 2 denied": a summary's counts, most frequent first. */
export function formatCounts(summary: Readonly<Record<string, number>>): string {
  const parts = Object.entries(summary)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([state, n]) => `${n} ${state}`);
  return parts.length > 0 ? parts.join(', ') : 'no VMs';
}

/** One progress line of a run: "[####----] 12/50 done · 10 running · 28 queued · 2 failed". */
export function runProgressLine(summary: Readonly<Record<string, number>>, barWidth = 24): string {
  const p = runProgress(summary);
  const parts = [`${p.done}/${p.total} done`];
  if (p.running > 0) {
    parts.push(`${p.running} running`);
  }
  if (p.queued > 0) {
    parts.push(`${p.queued} queued`);
  }
  if (p.failed > 0) {
    parts.push(`${p.failed} not succeeded`);
  }
  const bar = barWidth > 0 ? `${renderBar(p.total ? p.done / p.total : 0, barWidth)} ` : '';
  return `${bar}${parts.join(' · ')}`;
}

/** One progress line of a transfer; `total` undefined when the size is not known. */
export function transferLine(
  bytes: number,
  total: number | undefined,
  elapsedMs: number,
  barWidth = 24,
): string {
  const rate = elapsedMs > 0 ? `${formatBytes((bytes * 1000) / elapsedMs)}/s` : '';
  if (total === undefined) {
    return `${formatBytes(bytes)}  ${rate}`.trimEnd();
  }
  const f = total > 0 ? bytes / total : 1;
  return `${renderBar(f, barWidth)} ${String(Math.floor(f * 100)).padStart(3)}%  ${formatBytes(bytes)} / ${formatBytes(total)}  ${rate}`.trimEnd();
}

/** A line redrawn in place on a terminal. */
export class ProgressLine {
  private last = 0;
  private shown = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly minIntervalMs = 100,
  ) {}

  update(line: string, force = false): void {
    const now = Date.now();
    if (!force && now - this.last < this.minIntervalMs) {
      return;
    }
    this.last = now;
    const cols = this.stream.columns || 80;
    const fitted = [...line].slice(0, cols - 1).join('');
    this.stream.write(`\r\x1b[2K${fitted}`);
    this.shown = true;
  }

  /** Removes the line (the final state is printed by the caller). */
  clear(): void {
    if (this.shown) {
      this.stream.write('\r\x1b[2K');
      this.shown = false;
    }
  }
}
