import { describe, expect, it } from '@jest/globals';
import {
  formatBytes,
  formatCounts,
  formatDuration,
  renderBar,
  runProgress,
  runProgressLine,
  transferLine,
} from './progress.js';

describe('progress formatting', () => {
  it('should draw a bar of the given width for a fraction, clamped to 0..1', () => {
    expect(renderBar(0, 12)).toBe('[----------]');
    expect(renderBar(0.5, 12)).toBe('[#####-----]');
    expect(renderBar(1, 12)).toBe('[##########]');
    expect(renderBar(7, 6)).toBe('[####]');
    expect(renderBar(Number.NaN, 6)).toBe('[----]');
  });

  it('should format sizes in binary units and durations by magnitude', () => {
    expect([
      formatBytes(0),
      formatBytes(1023),
      formatBytes(1536),
      formatBytes(3 * 1024 ** 2),
    ]).toEqual(['0 B', '1023 B', '1.50 KiB', '3.00 MiB']);
    expect(formatBytes(150 * 1024 ** 3)).toBe('150 GiB');
    expect([formatDuration(250), formatDuration(1500), formatDuration(125_000)]).toEqual([
      '250 ms',
      '1.5 s',
      '2m05s',
    ]);
    expect(formatDuration(3_725_000)).toBe('1h02m');
  });

  it('should count a run summary as done, running, queued and not succeeded', () => {
    const summary = { succeeded: 5, failed: 1, denied: 1, running: 2, queued: 3, timed_out: 1 };
    expect(runProgress(summary)).toEqual({
      total: 13,
      done: 8,
      running: 2,
      queued: 3,
      failed: 3,
      succeeded: 5,
    });
    expect(runProgressLine(summary, 0)).toBe('8/13 done · 2 running · 3 queued · 3 not succeeded');
    expect(runProgressLine({ succeeded: 2, running: 2 }, 6)).toBe('[##--] 2/4 done · 2 running');
    expect(formatCounts(summary)).toBe(
      '5 succeeded, 3 queued, 2 running, 1 denied, 1 failed, 1 timed_out',
    );
    expect(formatCounts({})).toBe('no VMs');
  });

  it('should show a transfer with a percentage when the size is known and a rate', () => {
    expect(transferLine(1024 ** 2, 4 * 1024 ** 2, 1000, 6)).toBe(
      '[#---]  25%  1.00 MiB / 4.00 MiB  1.00 MiB/s',
    );
    expect(transferLine(2048, undefined, 2000)).toBe('2.00 KiB  1.00 KiB/s');
  });
});
