import type { DirectoryStream } from './directory-stream.js';

/**
 * The `limit` smallest strings of a stream, kept in a max-heap of at most `limit` items: the
 * largest kept is at the top and is replaced whenever a smaller one arrives, so memory is the
 * page, never the stream.
 */
export class SmallestNames {
  private readonly heap: string[] = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`limit must be a positive integer, not ${limit}`);
    }
  }

  get size(): number {
    return this.heap.length;
  }

  offer(name: string): void {
    const h = this.heap;
    if (h.length < this.limit) {
      h.push(name);
      this.up(h.length - 1);
    } else if (name < h[0]!) {
      h[0] = name;
      this.down(0);
    }
  }

  /** What was kept, smallest first. */
  sorted(): string[] {
    return [...this.heap].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]! >= h[i]!) {
        return;
      }
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let largest = i;
      if (l < h.length && h[l]! > h[largest]!) {
        largest = l;
      }
      if (r < h.length && h[r]! > h[largest]!) {
        largest = r;
      }
      if (largest === i) {
        return;
      }
      [h[largest], h[i]] = [h[i]!, h[largest]!];
      i = largest;
    }
  }
}

const YIELD_EVERY = 4096;

export interface DirectoryPage {
  /** Up to `limit` names after the cursor, sorted. */
  names: string[];
  /** More names follow the last one. */
  more: boolean;
  /** Every entry of the directory, as this pass read it. */
  total: number;
}

/**
 * One pass over a directory: counts its entries and keeps the `limit` smallest names after
 * `cursor` (plus one, to know whether more follow). The directory is read as a stream, never
 * whole; it is closed when done.
 */
export async function readDirectoryPage(
  dir: DirectoryStream,
  cursor: string,
  limit: number,
): Promise<DirectoryPage> {
  const kept = new SmallestNames(limit + 1);
  let total = 0;
  try {
    // Names come from the stream's buffer, refilled by one getdents(2) when empty; the event
    // loop gets a turn every YIELD_EVERY names.
    for (let name = dir.next(); name !== null; name = dir.next()) {
      total++;
      if (name > cursor) {
        kept.offer(name);
      }
      if (total % YIELD_EVERY === 0) {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    dir.close();
  }
  const names = kept.sorted();
  const more = names.length > limit;
  return { names: more ? names.slice(0, limit) : names, more, total };
}
