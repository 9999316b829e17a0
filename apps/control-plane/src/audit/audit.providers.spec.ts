import { describe, expect, it } from '@jest/globals';
import { spoolIsTemporary } from './audit.providers.js';

describe('spoolIsTemporary', () => {
  it.each([
    ['/tmp/limiquantix-audit-spool/abc', true],
    ['/tmp', true],
    ['/tmp/../tmp/x', true],
    ['/var/lib/limiquantix/audit-spool', false],
    ['/tmpfoo/spool', false],
    ['/', false],
  ])('%s → %s (temp dir /tmp)', (dir, temporary) => {
    expect(spoolIsTemporary(dir, '/tmp')).toBe(temporary);
  });
});
