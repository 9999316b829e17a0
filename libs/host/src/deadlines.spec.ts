import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { Deadlines, type Deadline } from './deadlines.js';

/** Deadlines on jest's fake clock from 0, and the log item() writes to. */
function onFakeClock(): { d: Deadlines; log: string[] } {
  jest.useFakeTimers({ now: 0 });
  return { d: new Deadlines(() => Date.now()), log: [] };
}

function item(name: string, log: string[]): Deadline {
  return { expire: () => log.push(`${name}@${Date.now()}`) };
}

describe('Deadlines', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('should expire each deadline at its own time, in order, across durations', () => {
    const { d, log } = onFakeClock();
    d.add(item('a', log), 100);
    jest.advanceTimersByTime(30);
    d.add(item('b', log), 100);
    d.add(item('c', log), 20);
    jest.advanceTimersByTime(19);
    expect(log).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(log).toEqual(['c@50']);
    jest.advanceTimersByTime(49);
    expect(log).toEqual(['c@50']);
    jest.advanceTimersByTime(1);
    expect(log).toEqual(['c@50', 'a@100']);
    jest.advanceTimersByTime(30);
    expect(log).toEqual(['c@50', 'a@100', 'b@130']);
    expect(d.size).toBe(0);
  });

  it('should never expire a removed deadline, nor the next one early when the first is removed', () => {
    const { d, log } = onFakeClock();
    const a = item('a', log);
    const b = item('b', log);
    const c = item('c', log);
    d.add(a, 100);
    jest.advanceTimersByTime(10);
    d.add(b, 100);
    jest.advanceTimersByTime(10);
    d.add(c, 100);
    d.remove(a);
    d.remove(c);
    d.remove(c); // twice: nothing
    expect(d.size).toBe(1);
    jest.advanceTimersByTime(80); // a's time
    expect(log).toEqual([]);
    jest.advanceTimersByTime(10);
    expect(log).toEqual(['b@110']);
    jest.advanceTimersByTime(1000);
    expect(log).toEqual(['b@110']);
  });

  it('should restart a deadline added again, and take new ones after a quiet lane', () => {
    const { d, log } = onFakeClock();
    const a = item('a', log);
    d.add(a, 100);
    jest.advanceTimersByTime(60);
    d.add(a, 100);
    jest.advanceTimersByTime(60);
    expect(log).toEqual([]);
    jest.advanceTimersByTime(40);
    expect(log).toEqual(['a@160']);
    // The lane emptied and its timer ran out; a later deadline arms a new one.
    jest.advanceTimersByTime(500);
    d.add(item('b', log), 100);
    jest.advanceTimersByTime(100);
    expect(log).toEqual(['a@160', 'b@760']);
  });

  it('should take a deadline added by an expiring one', () => {
    const { d, log } = onFakeClock();
    const again = item('again', log);
    d.add(
      {
        expire: () => {
          log.push(`first@${Date.now()}`);
          d.add(again, 50);
        },
      },
      50,
    );
    jest.advanceTimersByTime(100);
    expect(log).toEqual(['first@50', 'again@100']);
  });

  it('should wait out a deadline longer than setTimeout takes, and expire a bad one at once', () => {
    const { d, log } = onFakeClock();
    const day = 86_400_000;
    d.add(item('month', log), 30 * day);
    d.add(item('nan', log), NaN);
    d.add(item('negative', log), -5);
    jest.advanceTimersByTime(1);
    expect(log).toEqual(['nan@1', 'negative@1']);
    jest.advanceTimersByTime(29 * day);
    expect(log).toHaveLength(2);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(day);
    expect(log).toEqual(['nan@1', 'negative@1', `month@${30 * day}`]);
  });

  it('should hold the process open only while a deadline is pending', () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const d = new Deadlines();
    const a: Deadline = { expire: () => undefined };
    const b: Deadline = { expire: () => undefined };
    d.add(a, 60_000);
    d.add(b, 60_000);
    expect(timers()).toBe(before + 1); // one timer for the lane, not one per deadline
    d.remove(a);
    expect(timers()).toBe(before + 1);
    d.remove(b);
    expect(timers()).toBe(before);
    d.add(a, 60_000);
    expect(timers()).toBe(before + 1);
    d.remove(a);
    expect(timers()).toBe(before);
  });
});
