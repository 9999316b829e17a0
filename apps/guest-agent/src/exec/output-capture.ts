/**
 * Keeps the first `limit` bytes of a stream and counts the rest. One buffer grown by doubling up to
 * the limit: a chunk list would cost an object per chunk, and a child writing a byte at a time makes
 * a million of them.
 */
export class OutputCapture {
  private buf = new Uint8Array(0);
  private kept = 0;
  private seen = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Uint8Array): void {
    this.seen += chunk.length;
    const take = Math.min(this.limit - this.kept, chunk.length);
    if (take <= 0) {
      return;
    }
    if (this.kept + take > this.buf.length) {
      const size = Math.min(this.limit, Math.max(this.kept + take, this.buf.length * 2, 4096));
      const grown = new Uint8Array(size);
      grown.set(this.buf.subarray(0, this.kept));
      this.buf = grown;
    }
    this.buf.set(chunk.subarray(0, take), this.kept);
    this.kept += take;
  }

  get totalBytes(): number {
    return this.seen;
  }

  get truncated(): boolean {
    return this.seen > this.kept;
  }

  /** The kept bytes, in a buffer of exactly their size (results may be retained a while). */
  bytes(): Uint8Array {
    return this.kept === this.buf.length ? this.buf : this.buf.slice(0, this.kept);
  }
}
