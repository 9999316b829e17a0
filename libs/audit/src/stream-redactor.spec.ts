import { describe, expect, it } from '@jest/globals';
import { OutputRedactor, StreamRedactor } from './output-redactor.js';

const redactor = new OutputRedactor({ defaults: true });

/** The stream's output as it would be stored, cut into pieces at `cuts`. */
function through(text: string, cuts: number[], holdBytes = 4096, r = redactor): string {
  const s = new StreamRedactor(r, holdBytes);
  const input = Buffer.from(text, 'latin1');
  const out: Buffer[] = [];
  let from = 0;
  for (const at of [...cuts, input.length]) {
    out.push(Buffer.from(s.push(input.subarray(from, at)).data));
    from = at;
  }
  out.push(Buffer.from(s.end().data));
  return Buffer.concat(out).toString('latin1');
}

const KEY = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACDm0S0sZ2lXuB5mYQ8fQ3sG9cGSpRk3S4Z7Gt9tFfVDXwAAAJgK8c5qCvHO',
  '-----END OPENSSH PRIVATE KEY-----',
].join('\n');

describe('StreamRedactor', () => {
  it('should redact a password cut at any byte as if it came whole', () => {
    const text = 'starting\npassword=hunter2-very-secret\ndone\n';
    const whole = redactor.redact(Buffer.from(text)).data.toString();
    expect(whole).toBe('starting\npassword=[redacted]\ndone\n');
    for (let cut = 1; cut < text.length; cut++) {
      expect([cut, through(text, [cut])]).toEqual([cut, whole]);
    }
  });

  it('should drop a private key block cut into many pieces, wherever the cuts fall', () => {
    const text = `before\n${KEY}\nafter\n`;
    for (const step of [1, 7, 33, 64, 100]) {
      const cuts: number[] = [];
      for (let at = step; at < text.length; at += step) {
        cuts.push(at);
      }
      const out = through(text, cuts);
      expect([step, out]).toEqual([step, 'before\n[redacted]\nafter\n']);
    }
  });

  it('should never let out the body of a key whose END never comes', () => {
    const text = `x\n${KEY.split('\n').slice(0, 3).join('\n')}\nmore body AAAA`;
    const out = through(text, [10, 50, 90, 130]);
    expect(out).toBe('x\n[redacted]');
    expect(out).not.toMatch(/b3BlbnNz|QyNTUx/);
  });

  it('should hold a partial line back only up to its bound', () => {
    const s = new StreamRedactor(redactor, 8);
    expect(Buffer.from(s.push(Buffer.from('abc')).data).toString()).toBe('');
    expect(s.heldBytes).toBe(3);
    expect(Buffer.from(s.push(Buffer.from('defghij')).data).toString()).toBe('abcdefghij');
    expect(Buffer.from(s.push(Buffer.from('12\r34')).data).toString()).toBe('12\r');
    expect(Buffer.from(s.end().data).toString()).toBe('34');
  });

  it('should count what it replaced and pass bytes through untouched without patterns', () => {
    const s = new StreamRedactor(redactor, 100);
    expect(s.push(Buffer.from('token=abc')).count).toBe(0);
    expect(s.push(Buffer.from('def\n')).count).toBe(1);
    const none = new OutputRedactor({ defaults: false });
    const binary = Buffer.from([0, 255, 10, 128, 13, 7]);
    expect(through(binary.toString('latin1'), [2, 4], 4096, none)).toBe(binary.toString('latin1'));
  });
});
