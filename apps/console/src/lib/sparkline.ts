/**
 * The SVG polyline points of a sparkline: the last values spread over `width`, 0..max mapped
 * to the bottom..top of `height` (max defaults to the largest value, at least 1). Values out of
 * range are clamped; non-numbers are skipped.
 */
export function sparklinePoints(
  values: readonly number[],
  width: number,
  height: number,
  max?: number,
): string {
  const clean = values.filter((v) => Number.isFinite(v));
  if (clean.length === 0) {
    return '';
  }
  const top = max ?? Math.max(1, ...clean);
  const step = clean.length > 1 ? width / (clean.length - 1) : 0;
  return clean
    .map((v, i) => {
      const y = height - (Math.min(Math.max(v, 0), top) / top) * height;
      const x = clean.length > 1 ? i * step : width;
      return `${round(x)},${round(y)}`;
    })
    .join(' ');
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** Per-second rates from successive counter readings; a counter reset yields no sample. */
export function ratesFrom(samples: ReadonlyArray<{ at: number; value: number }>): number[] {
  const out: number[] = [];
  for (let i = 1; i < samples.length; i += 1) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const dt = (b.at - a.at) / 1000;
    if (dt > 0 && b.value >= a.value) {
      out.push((b.value - a.value) / dt);
    }
  }
  return out;
}
