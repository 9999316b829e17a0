/**
 * The releases of receive buffers a decoder lent out with what it returned (a frame's payload, a
 * decoded message whose bytes fields are views of one), by that object: each handed over once.
 */
export class LentBuffers<K extends object> {
  private readonly releases = new WeakMap<K, () => void>();

  set(key: K, release: () => void): void {
    this.releases.set(key, release);
  }

  /** The release lent with `key`, if any; later calls for it return undefined. */
  take(key: K): (() => void) | undefined {
    const release = this.releases.get(key);
    if (release !== undefined) {
      this.releases.delete(key);
    }
    return release;
  }
}
