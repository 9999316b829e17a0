import { describe, expect, it, jest } from '@jest/globals';
import type { AgentMessage } from '@lq/proto';
import { AckBatcher, PendingRequests, type PendingRequest } from './pending-requests.js';

function entry(id: string, sentAt?: number): PendingRequest & { rejected: Error[] } {
  const rejected: Error[] = [];
  return {
    id,
    promise: Promise.resolve({} as AgentMessage),
    operation: 'ping',
    frame: [],
    resolve: () => undefined,
    reject: (err) => rejected.push(err),
    expire: () => undefined,
    ack: false,
    ...(sentAt === undefined ? {} : { sentAt }),
    rejected,
  };
}

describe('PendingRequests', () => {
  it('should hand a reply its request once and forget it', () => {
    const p = new PendingRequests();
    const a = entry('a');
    p.add(a, 60_000);
    expect(p.take('a')).toBe(a);
    expect(p.take('a')).toBeUndefined();
    expect(p.size).toBe(0);
  });

  it('should not drop a request that a retry under the same id replaced', () => {
    const p = new PendingRequests();
    const first = entry('x');
    const second = entry('x');
    p.add(first, 60_000);
    p.add(second, 60_000);
    expect(p.drop(first)).toBe(false);
    expect(p.get('x')).toBe(second);
    expect(p.drop(second)).toBe(true);
  });

  it('should fail only what was written before the cut-off, and never what was not written', () => {
    const p = new PendingRequests();
    const old = entry('old', 10);
    const young = entry('young', 30);
    const unsent = entry('unsent');
    [old, young, unsent].forEach((e) => p.add(e, 60_000));
    p.fail(new Error('restarted'), 20);
    expect(old.rejected.map((e) => e.message)).toEqual(['restarted']);
    expect(young.rejected).toEqual([]);
    expect(unsent.rejected).toEqual([]);
    expect([...p.values()].map((e) => e.id)).toEqual(['young', 'unsent']);
    p.fail(new Error('closed'));
    expect(p.size).toBe(0);
    expect(unsent.rejected.map((e) => e.message)).toEqual(['closed']);
  });

  it('should say whether a written request has waited long enough', () => {
    const p = new PendingRequests();
    p.add(entry('unsent'), 60_000);
    expect(p.waitingSince(1000, 100)).toBe(false);
    p.add(entry('sent', 850), 60_000);
    expect(p.waitingSince(900, 100)).toBe(false);
    expect(p.waitingSince(950, 100)).toBe(true);
    p.fail(new Error('end'));
  });
});

describe('AckBatcher', () => {
  it('should send a full batch at once and the rest after its delay', () => {
    jest.useFakeTimers();
    try {
      const sent: string[][] = [];
      const b = new AckBatcher((ids) => (sent.push(ids), true), 3, 50);
      ['a', 'b', 'c', 'd'].forEach((id) => b.queue(id));
      expect(sent).toEqual([['a', 'b', 'c']]);
      jest.advanceTimersByTime(50);
      expect(sent).toEqual([['a', 'b', 'c'], ['d']]);
    } finally {
      jest.useRealTimers();
    }
  });

  it('should keep the ids when there is no channel and send them with the next flush', () => {
    let open = false;
    const sent: string[][] = [];
    const b = new AckBatcher((ids) => (open ? (sent.push(ids), true) : false));
    b.queue('a');
    b.flush();
    expect(sent).toEqual([]);
    open = true;
    b.queue('b');
    b.close();
    expect(sent).toEqual([['a', 'b']]);
  });
});
