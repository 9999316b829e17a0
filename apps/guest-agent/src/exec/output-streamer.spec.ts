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

  it('should send every byte and ask the caller to pause reading while over the rate', () => {
    const { s, events, advance } = setup(1000, 10_000);
    // One second's budget to start with: no pause.
    expect(s.push('stdout', Buffer.from('x'.repeat(1000)))).toBe(0);
    // 500 bytes of debt at 1000 B/s: half a second.
    expect(s.push('stdout', Buffer.from('x'.repeat(500)))).toBe(500);
    advance(500);
    // The debt is paid: the next 100 bytes are 100 ms over again.
    expect(s.push('stdout', Buffer.from('y'.repeat(100)))).toBe(100);
    s.close();
    const sent = Buffer.concat(events.map((e) => e.data)).toString();
    expect(sent).toBe('x'.repeat(1500) + 'y'.repeat(100));
    expect(events.every((e) => e.droppedBytes === 0n)).toBe(true);
  });
});
