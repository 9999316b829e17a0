import { describe, expect, it } from '@jest/globals';
import { SseParser, type SseEvent } from './sse.js';

const enc = new TextEncoder();

/** What the control plane sends for one output chunk and the end of an execution. */
const STREAM =
  'id: 1\nevent: output\ndata: {"seq":1,"stream":"stdout","text":"l1\\n"}\n\n' +
  ': keepalive\n\n' +
  'id: 2\nevent: output\ndata: {"seq":2,"stream":"stderr","text":"é€😀\\n"}\n\n' +
  'event: end\ndata: {"status":"failed","exit_code":7}\n\n';

function feed(parser: SseParser, parts: Array<string | Uint8Array>): SseEvent[] {
  return [...parts.flatMap((p) => parser.push(p)), ...parser.end()];
}

describe('SseParser', () => {
  it('should parse event, id and data fields into events when blocks end with a blank line', () => {
    const events = feed(new SseParser(), [STREAM]);
    expect(events).toEqual([
      { event: 'output', id: '1', data: '{"seq":1,"stream":"stdout","text":"l1\\n"}' },
      { event: 'output', id: '2', data: '{"seq":2,"stream":"stderr","text":"é€😀\\n"}' },
      { event: 'end', data: '{"status":"failed","exit_code":7}' },
    ]);
  });

  it('should give the same events when the bytes arrive in every possible split, even mid-character', () => {
    const bytes = enc.encode(STREAM);
    const whole = feed(new SseParser(), [bytes]);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(feed(new SseParser(), [bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(whole);
    }
  });

  it('should give the same events when fed one byte at a time', () => {
    const bytes = enc.encode(STREAM);
    const parts = [...bytes].map((b) => Uint8Array.of(b));
    expect(feed(new SseParser(), parts)).toEqual(feed(new SseParser(), [bytes]));
  });

  it('should accept CRLF and CR line endings, including a CRLF split between chunks', () => {
    const parser = new SseParser();
    expect(parser.push('event: a\r\ndata: 1\r')).toEqual([]);
    expect(parser.push('\n\r\nevent: b\rdata: 2\r\r')).toEqual([{ event: 'a', data: '1' }]);
    expect(parser.end()).toEqual([{ event: 'b', data: '2' }]);
  });

  it('should join multi-line data with newlines and default the event name to message', () => {
    expect(feed(new SseParser(), ['data: a\ndata:b\ndata\n\n'])).toEqual([
      { event: 'message', data: 'a\nb\n' },
    ]);
  });

  it('should not dispatch a block without data, nor an incomplete block at the end', () => {
    expect(feed(new SseParser(), ['event: progress\n\n', 'event: end\ndata: {}'])).toEqual([]);
  });

  it('should remember the last id across events for a reconnect', () => {
    const parser = new SseParser();
    parser.push('id: 41\ndata: x\n\ndata: y\n\n');
    expect(parser.lastEventId).toBe('41');
    parser.push('id: 42\ndata: z\n\n');
    expect(parser.lastEventId).toBe('42');
  });

  it('should ignore comments, unknown fields and an id holding NUL, and read retry', () => {
    expect(feed(new SseParser(), [':hi\nfoo: bar\nid: a\0b\nretry: 1500\ndata: d\n\n'])).toEqual([
      { event: 'message', data: 'd', retry: 1500 },
    ]);
  });
});
