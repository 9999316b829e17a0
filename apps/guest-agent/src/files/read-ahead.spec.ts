import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { ReadAhead } from './read-ahead.js';

/** A file in memory: its bytes can be rewritten, and every read(2) it serves is counted. */
function memoryFile(initial: Buffer) {
  const file = { bytes: initial, reads: 0 };
  const read = (_fd: number, buf: Uint8Array, position: number): number => {
    file.reads++;
    return Math.max(0, file.bytes.copy(buf, 0, position, position + buf.length));
  };
  return { file, read };
}

describe('ReadAhead', () => {
  const data = randomBytes(100_000);

  function readAll(ra: ReadAhead, chunk: number): Buffer {
    const parts: Buffer[] = [];
    for (let offset = 0; ;) {
      const into = Buffer.alloc(chunk);
      const n = ra.readInto(3, into, offset);
      parts.push(into.subarray(0, n));
      offset += n;
      if (n < chunk) {
        return Buffer.concat(parts);
      }
    }
  }

  it('should serve sequential small reads from one read per read-ahead size', () => {
    const { file, read } = memoryFile(data);
    const ra = new ReadAhead({ bytes: 64 * 1024, maxAgeMs: 1000 }, read, () => 0);
    expect(readAll(ra, 4096).equals(data)).toBe(true);
    // 100,000 bytes: read-aheads at 0 and 65,536, and one more for the last partial chunk's
    // rest (it reaches past what the second read held: read again, fresh, and it is the end).
    expect(file.reads).toBe(3);
  });

  it('should read a file directly when read-ahead is off, reads are large or out of order', () => {
    const { file, read } = memoryFile(data);
    const off = new ReadAhead({ bytes: 0, maxAgeMs: 1000 }, read, () => 0);
    expect(readAll(off, 4096).equals(data)).toBe(true);
    expect(file.reads).toBe(Math.ceil(data.length / 4096));

    file.reads = 0;
    const ra = new ReadAhead({ bytes: 64 * 1024, maxAgeMs: 1000 }, read, () => 0);
    // More than a quarter of the read-ahead size: a read of its own, every time (five full
    // chunks, then the empty read that finds the end).
    expect(readAll(ra, 20_000).equals(data)).toBe(true);
    expect(file.reads).toBe(6);

    file.reads = 0;
    const random = new ReadAhead({ bytes: 64 * 1024, maxAgeMs: 1000 }, read, () => 0);
    const into = Buffer.alloc(100);
    for (const offset of [50_000, 10, 90_000, 7]) {
      expect(random.readInto(3, into, offset)).toBe(100);
      expect(into.equals(data.subarray(offset, offset + 100))).toBe(true);
    }
    // The first read is not taken for sequential (the last read ended at 0): one read each.
    expect(file.reads).toBe(4);
    expect(random.bufferedBytes).toBe(0);
  });

  it('should serve bytes read ahead for read_ahead_max_age_ms at most', () => {
    const { file, read } = memoryFile(Buffer.from(data));
    let now = 0;
    const ra = new ReadAhead({ bytes: 64 * 1024, maxAgeMs: 100 }, read, () => now);
    const into = Buffer.alloc(4096);
    ra.readInto(3, into, 0);
    // Rewritten in place under the reader: within the age, the bytes read ahead are served...
    file.bytes.fill(0xee, 4096, 8192);
    now = 100;
    ra.readInto(3, into, 4096);
    expect(into.equals(data.subarray(4096, 8192))).toBe(true);
    // ...past it, the file's own.
    file.bytes.fill(0xee, 8192, 12_288);
    now = 100.5;
    ra.readInto(3, into, 8192);
    expect(into.every((b) => b === 0xee)).toBe(true);
    expect(file.reads).toBe(2);
  });

  it('should end where the file ends and see it grow past what was read ahead', () => {
    const { file, read } = memoryFile(data.subarray(0, 5000));
    const ra = new ReadAhead({ bytes: 64 * 1024, maxAgeMs: 60_000 }, read, () => 0);
    const into = Buffer.alloc(4096);
    expect(ra.readInto(3, into, 0)).toBe(4096);
    expect(ra.readInto(3, into, 4096)).toBe(904); // a short read: the end
    file.bytes = data; // grown: a read from the end on is made fresh
    expect(ra.readInto(3, into, 5000)).toBe(4096);
    expect(into.equals(data.subarray(5000, 9096))).toBe(true);
    expect(file.reads).toBe(3);
  });

  it('should let go of its buffer on drop and read again afterwards', () => {
    const { file, read } = memoryFile(data);
    const ra = new ReadAhead({ bytes: 64 * 1024, maxAgeMs: 60_000 }, read, () => 0);
    const into = Buffer.alloc(4096);
    ra.readInto(3, into, 0);
    expect(ra.bufferedBytes).toBe(64 * 1024);
    ra.drop();
    expect(ra.bufferedBytes).toBe(0);
    ra.readInto(3, into, 4096);
    expect(into.equals(data.subarray(4096, 8192))).toBe(true);
    expect(file.reads).toBe(2);
  });
});
