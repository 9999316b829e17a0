import { describe, expect, it } from '@jest/globals';
import { guestOperationOf, isSubjectToken, subjects } from './subjects.js';

describe('subjects', () => {
  it('should build hierarchical subjects', () => {
    expect(subjects.guest('n1', 'file.read')).toBe('lq.v1.node.n1.guest.file.read');
    expect(subjects.event('n1', 'vm-1', 'ready')).toBe('lq.v1.events.n1.vm-1.ready');
  });

  it('should read the operation only from its own node subjects', () => {
    expect(guestOperationOf('lq.v1.node.n1.guest.file.write', 'n1')).toBe('file.write');
    expect(guestOperationOf('lq.v1.node.n1.guest.format-disk', 'n1')).toBeUndefined();
    expect(guestOperationOf('lq.v1.node.n2.guest.ping', 'n1')).toBeUndefined();
  });

  it('should accept only safe tokens as ids', () => {
    expect(isSubjectToken('vm-1_a')).toBe(true);
    for (const bad of ['', 'a.b', 'a*', 'a>', 'a b', 'x'.repeat(129)]) {
      expect(isSubjectToken(bad)).toBe(false);
    }
  });
});
