import { describe, expect, it } from '@jest/globals';
import { ReadSlab } from './read-slab.js';

describe('ReadSlab', () => {
  it('should hand out consecutive regions of one slab, and a new slab when a read may not fit', () => {
    const slab = new ReadSlab();
    const first = slab.region();
    expect(first.length).toBe(ReadSlab.SLAB_BYTES);
    first.write('hello', 0);
    const a = slab.commit(first, 5);
    expect(a.toString()).toBe('hello');
    const second = slab.region();
    // The next read goes right after the bytes committed, in the same memory.
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBe(first.byteOffset + 5);
    second.write('world', 0);
    expect(slab.commit(second, 5).toString()).toBe('world');
    expect(a.toString()).toBe('hello'); // earlier chunks are left alone
    // Fill until less than a read's room is left: the next region is a new slab.
    let region = slab.region();
    let used = 10;
    while (ReadSlab.SLAB_BYTES - used >= ReadSlab.READ_BYTES) {
      slab.commit(region, ReadSlab.READ_BYTES - 1);
      used += ReadSlab.READ_BYTES - 1;
      region = slab.region();
    }
    expect(region.buffer).not.toBe(first.buffer);
    expect(region.length).toBe(ReadSlab.SLAB_BYTES);
  });
});
