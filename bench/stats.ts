/** Median, p99 (nearest rank), min and max of a sample, as shared/peer-bench reports them. */
export function stats(samples: number[]): {
  median: number;
  p99: number;
  min: number;
  max: number;
} {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { median: at(0.5), p99: at(0.99), min: s[0]!, max: s[s.length - 1]! };
}
