import { describe, expect, it } from '@jest/globals';
import { readDirectoryPage, SmallestNames } from './directory-page.js';
import type { DirectoryStream } from './directory-stream.js';

function streamOf(names: string[]): DirectoryStream & { closed: boolean } {
  let i = 0;
  return {
    closed: false,
    next: () => (i < names.length ? names[i++]! : null),
    close() {
      this.closed = true;
    },
  };
}

function shuffled(n: number): string[] {
  const names = Array.from({ length: n }, (_, i) => `n${String(i).padStart(5, '0')}`);
  for (let i = names.length - 1; i > 0; i--) {
    const j = (i * 7919 + 13) % (i + 1);
    [names[i], names[j]] = [names[j]!, names[i]!];
  }
  return names;
}

describe('SmallestNames', () => {
  it('should keep the smallest names and never more than its limit', () => {
    const kept = new SmallestNames(10);
    let largest = 0;
    for (const name of shuffled(5000)) {
      kept.offer(name);
      largest = Math.max(largest, kept.size);
    }
    expect(largest).toBe(10);
    expect(kept.sorted()).toEqual(Array.from({ length: 10 }, (_, i) => `n0000${i}`));
  });

  it('should refuse a limit that is not a positive integer', () => {
    expect(() => new SmallestNames(0)).toThrow(/positive integer/);
  });
});

describe('readDirectoryPage', () => {
  it('should page through every name once, in order, and close the stream each time', async () => {
    const names = shuffled(2500);
    const seen: string[] = [];
    let cursor = '';
    for (;;) {
      const stream = streamOf(names);
      const page = await readDirectoryPage(stream, cursor, 300);
      expect(stream.closed).toBe(true);
      expect(page.total).toBe(2500);
      seen.push(...page.names);
      if (!page.more) {
        break;
      }
      cursor = page.names[page.names.length - 1]!;
    }
    expect(seen).toEqual([...names].sort());
  });

  it('should say no more follow when the last page is exactly full', async () => {
    const page = await readDirectoryPage(streamOf(['b', 'a', 'c']), '', 3);
    expect(page).toEqual({ names: ['a', 'b', 'c'], more: false, total: 3 });
  });
});
