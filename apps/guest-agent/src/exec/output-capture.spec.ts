import { describe, expect, it } from '@jest/globals';
import { OutputCapture } from './output-capture.js';

describe('OutputCapture', () => {
  it('should keep everything when the output fits the limit', () => {
    const c = new OutputCapture(100);
    c.push(Buffer.from('hello '));
    c.push(Buffer.from('world'));
    expect(Buffer.from(c.bytes()).toString()).toBe('hello world');
    expect(c.bytes().length).toBe(11);
    expect(c.truncated).toBe(false);
    expect(c.totalBytes).toBe(11);
  });

  it('should keep the first limit bytes and count the rest when the output exceeds the limit', () => {
    const c = new OutputCapture(10);
    c.push(Buffer.from('0123456'));
    c.push(Buffer.from('789abcdef'));
    c.push(Buffer.from('more'));
    expect(Buffer.from(c.bytes()).toString()).toBe('0123456789');
    expect(c.truncated).toBe(true);
    expect(c.totalBytes).toBe(20);
  });

  it('should never hold more than the limit when a stream arrives a byte at a time', () => {
    const c = new OutputCapture(10_000);
    const one = Buffer.from('x');
    for (let i = 0; i < 50_000; i++) {
      c.push(one);
    }
    expect(c.bytes().length).toBe(10_000);
    expect(c.bytes().buffer.byteLength).toBe(10_000);
    expect(c.totalBytes).toBe(50_000);
  });

  it('should keep nothing when the limit is 0', () => {
    const c = new OutputCapture(0);
    c.push(Buffer.from('abc'));
    expect(c.bytes().length).toBe(0);
    expect(c.truncated).toBe(true);
    expect(c.totalBytes).toBe(3);
  });
});
