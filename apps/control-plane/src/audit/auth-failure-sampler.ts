/**
 * Decides which failed authentications get an audit row of their own: at most `perAddress` per
 * source address and `total` altogether in each minute; the rest are counted per address and
 * reported as one summary row each when the minute ends. An attacker's flood therefore costs a
 * bounded number of rows, and every attempt is still accounted for.
 */
export class AuthFailureSampler {
  private window = -1;
  private total = 0;
  private readonly written = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();

  constructor(
    private readonly limits: { perAddress: number; total: number },
    /** Addresses tracked at once; beyond it they share one "(many)" entry. */
    private readonly maxAddresses = 10_000,
  ) {}

  /**
   * Whether this failure gets its own row. `flush` receives the counts of the minute that just
   * ended, before this failure is counted in the new one.
   */
  admit(address: string, now: number, flush: (counts: Array<[string, number]>) => void): boolean {
    this.roll(now, flush);
    const key =
      this.written.has(address) || this.written.size < this.maxAddresses ? address : '(many)';
    const n = this.written.get(key) ?? 0;
    if (n < this.limits.perAddress && this.total < this.limits.total) {
      this.written.set(key, n + 1);
      this.total++;
      return true;
    }
    const s = this.suppressed.has(key) || this.suppressed.size < this.maxAddresses ? key : '(many)';
    this.suppressed.set(s, (this.suppressed.get(s) ?? 0) + 1);
    return false;
  }

  /** Ends the minute when it is over (a timer calls it, so quiet periods flush too). */
  roll(now: number, flush: (counts: Array<[string, number]>) => void): void {
    const window = Math.floor(now / 60_000);
    if (window === this.window) {
      return;
    }
    this.window = window;
    this.total = 0;
    this.written.clear();
    if (this.suppressed.size > 0) {
      const counts = [...this.suppressed];
      this.suppressed.clear();
      flush(counts);
    }
  }
}
