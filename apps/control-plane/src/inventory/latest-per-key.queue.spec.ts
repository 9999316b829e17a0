import { describe, expect, it } from '@jest/globals';
import { LatestPerKeyQueue } from './latest-per-key.queue.js';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('LatestPerKeyQueue', () => {
  it('should run only the newest waiting job when a burst arrives during a run', async () => {
    const ran: string[] = [];
    const coalesced: string[] = [];
    const q = new LatestPerKeyQueue(
      () => undefined,
      (key) => coalesced.push(key),
    );
    const g = gate();

    q.push('k', async () => {
      await g.opened;
      ran.push('1');
    });
    q.push('k', async () => void ran.push('2'));
    q.push('k', async () => void ran.push('3'));
    g.open();
    await q.idle();

    expect(ran).toEqual(['1', '3']);
    expect(coalesced).toEqual(['k']);
    expect(q.size).toBe(0);
  });

  it('should run keys independently when one key is slow', async () => {
    const ran: string[] = [];
    const q = new LatestPerKeyQueue(() => undefined);
    const g = gate();

    q.push('slow', async () => {
      await g.opened;
      ran.push('slow');
    });
    q.push('fast', async () => void ran.push('fast'));
    await new Promise((r) => setImmediate(r));
    expect(ran).toEqual(['fast']);
    g.open();
    await q.idle();

    expect(ran).toEqual(['fast', 'slow']);
  });

  it('should report a failure and keep going when a job throws', async () => {
    const errors: string[] = [];
    const ran: string[] = [];
    const q = new LatestPerKeyQueue((key, err) => errors.push(`${key}: ${(err as Error).message}`));

    q.push('k', () => Promise.reject(new Error('database down')));
    await q.idle();
    q.push('k', async () => void ran.push('after'));
    await q.idle();

    expect(errors).toEqual(['k: database down']);
    expect(ran).toEqual(['after']);
  });
});
