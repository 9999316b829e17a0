import { describe, expect, it } from '@jest/globals';
import { AGENT_PORT_NAME, candidateFor, mappedVmId } from './channel-layout.js';

const UUID = '3f1c8a52-6d0e-4b7a-9c41-0a1b2c3d4e01';

describe('channel layouts', () => {
  it('should take the VM id from a flat <vmId>.sock name', () => {
    expect(candidateFor('/ch', 'vm-7.sock', false)).toEqual({
      path: '/ch/vm-7.sock',
      vmId: 'vm-7',
    });
    expect(candidateFor('/ch', 'notes.txt', false)).toBeUndefined();
  });

  it('should take the domain name and runtime id, but no VM id, from the libvirt layout', () => {
    expect(candidateFor('/ch', 'domain-12-web-1', true)).toEqual({
      path: `/ch/domain-12-web-1/${AGENT_PORT_NAME}`,
      vmId: undefined,
      domain: 'web-1',
      domainId: 12,
    });
    expect(candidateFor('/ch', 'other-dir', true)).toBeUndefined();
  });

  it('should make a libvirt domain its UUID when the map does not name it', () => {
    const c = candidateFor('/ch', 'domain-3-dup', true)!;
    expect(mappedVmId({}, c, UUID)).toBe(UUID);
    expect(mappedVmId({}, c)).toBeUndefined();
  });

  it('should leave the id unset when the name is not a subject token, for the map to supply', () => {
    const c = candidateFor('/ch', 'domain-3-my.vm', true)!;
    expect(c.vmId).toBeUndefined();
    expect(mappedVmId({ 'my.vm': 'vm-3' }, c)).toBe('vm-3');
  });

  it('should prefer the map by path, then UUID, then domain, then file name, over the layout', () => {
    const c = candidateFor('/ch', 'vm-1.sock', false)!;
    expect(mappedVmId({}, c)).toBe('vm-1');
    expect(mappedVmId({ 'vm-1.sock': 'by-name' }, c)).toBe('by-name');
    expect(mappedVmId({ '/ch/vm-1.sock': 'by-path', 'vm-1.sock': 'by-name' }, c)).toBe('by-path');
    const d = candidateFor('/ch', 'domain-3-web', true)!;
    expect(mappedVmId({ web: 'by-domain', [UUID]: 'by-uuid' }, d, UUID)).toBe('by-uuid');
    expect(mappedVmId({ web: 'by-domain' }, d, UUID)).toBe('by-domain');
    // Every libvirt channel has the same file name: it names no domain.
    expect(mappedVmId({ [AGENT_PORT_NAME]: 'all' }, d, UUID)).toBe(UUID);
  });

  it('should ignore what objects inherit when a domain is named like a property', () => {
    const c = candidateFor('/ch', 'domain-3-constructor', true)!;
    expect(mappedVmId({}, c, UUID)).toBe(UUID);
  });
});
