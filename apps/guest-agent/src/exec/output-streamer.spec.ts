import { describe, expect, it } from '@jest/globals';
import { OutputStream, type ExecOutputEvent } from '@lq/proto';
import { OutputStreamer } from './output-streamer.js';

describe('OutputStreamer', () => {
  const setup = (bytesPerSecond = 1000, chunkMaxBytes = 100) => {
    let now = 0;
    const events: ExecOutputEvent[] = [];
    const s = new OutputStreamer(
      'x',
      (e) => events.push(e),
      { flushMs: 1_000_000, chunkMaxBytes, bytesPerSecond },
      () => now,
    );
    return { s, events, advance: (ms: number) => (now += ms) };
  };

  it('should coalesce writes and split at the chunk size, numbering over both streams', () => {
    const { s, events } = setup(10_000, 100);
    s.push('stdout', Buffer.from('a'.repeat(60)));
    s.push('stderr', Buffer.from('e'));
    s.push('stdout', Buffer.from('b'.repeat(60)));
    s.close();
    expect(events.map((e) => [Number(e.seq), e.stream, e.data.length])).toEqual([
      [1, OutputStream.STDOUT, 100],
      [2, OutputStream.STDOUT, 20],
      [3, OutputStream.STDERR, 1],
    ]);
  });

  it('should skip past the rate and count what it skipped, keeping the newest bytes', () => {
    const { s, events, advance } = setup(1000, 10_000);
    s.push('stdout', Buffer.from('x'.repeat(1500)));
    s.flush();
    // The oldest 500 bytes were skipped, just before this chunk.
    expect(events[0]).toMatchObject({ droppedBytes: 500n });
    expect(events[0]?.data.length).toBe(1000);
    advance(500);
    s.push('stdout', Buffer.from('y'.repeat(600)));
    s.close();
    expect(events[1]).toMatchObject({ droppedBytes: 100n });
    expect(Buffer.from(events[1]!.data).toString()).toBe('y'.repeat(500));
    expect(events).toHaveLength(2);
  });
});
