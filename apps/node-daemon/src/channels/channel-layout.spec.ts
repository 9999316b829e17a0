import { describe, expect, it } from '@jest/globals';
import { AGENT_PORT_NAME, candidateFor, mappedVmId } from './channel-layout.js';

describe('channel layouts', () => {
  it('should take the VM id from a flat <vmId>.sock name', () => {
    expect(candidateFor('/ch', 'vm-7.sock', false)).toEqual({
      path: '/ch/vm-7.sock',
      vmId: 'vm-7',
    });
    expect(candidateFor('/ch', 'notes.txt', false)).toBeUndefined();
  });

  it('should take the domain name from the libvirt layout', () => {
    expect(candidateFor('/ch', 'domain-12-web-1', true)).toEqual({
      path: `/ch/domain-12-web-1/${AGENT_PORT_NAME}`,
      vmId: 'web-1',
      domain: 'web-1',
    });
    expect(candidateFor('/ch', 'other-dir', true)).toBeUndefined();
  });

  it('should leave the id unset when the name is not a subject token, for the map to supply', () => {
    const c = candidateFor('/ch', 'domain-3-my.vm', true)!;
    expect(c.vmId).toBeUndefined();
    expect(mappedVmId({ 'my.vm': 'vm-3' }, c)).toBe('vm-3');
  });

  it('should prefer the map by path, then domain, then file name, over the layout', () => {
    const c = candidateFor('/ch', 'vm-1.sock', false)!;
    expect(mappedVmId({}, c)).toBe('vm-1');
    expect(mappedVmId({ 'vm-1.sock': 'by-name' }, c)).toBe('by-name');
    expect(mappedVmId({ '/ch/vm-1.sock': 'by-path', 'vm-1.sock': 'by-name' }, c)).toBe('by-path');
  });
});
