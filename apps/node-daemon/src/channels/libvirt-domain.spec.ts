import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findDomainIdentity, parseDomainStatus } from './libvirt-domain.js';

const UUID = '3f1c8a52-6d0e-4b7a-9c41-0a1b2c3d4e01';

function status(name: string, id: number | undefined, uuid: string): string {
  return `<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit ${name}
-->
<domstatus state='running' reason='booted' pid='4242'>
  <monitor path='/var/lib/libvirt/qemu/domain-${id}-x/monitor.sock' type='unix'/>
  <qemuCaps><flag name='kvm'/></qemuCaps>
  <domain type='kvm'${id === undefined ? '' : ` id='${id}'`}>
    <name>${name}</name>
    <uuid>${uuid}</uuid>
    <sysinfo type='smbios'><system><entry name='uuid'>00000000-0000-0000-0000-000000000000</entry></system></sysinfo>
    <devices><disk><encryption><secret type='passphrase' uuid='11111111-1111-1111-1111-111111111111'/></encryption></disk></devices>
  </domain>
</domstatus>
`;
}

describe('libvirt status XML', () => {
  it('should read the runtime id, name and UUID of the domain', () => {
    expect(parseDomainStatus(status('web &amp; db', 7, UUID.toUpperCase()))).toEqual({
      id: 7,
      name: 'web & db',
      uuid: UUID,
    });
  });

  it.each([
    ['<domstatus/>', /no <domain>/],
    [status('x', undefined, UUID), /not running/],
    [status('x', 1, 'not-a-uuid'), /not a UUID/],
    ["<domain type='kvm' id='1'><name>x</name></domain>", /no <uuid>/],
  ])('should name the problem when the XML is %#', (xml, problem) => {
    expect(() => parseDomainStatus(xml)).toThrow(problem);
  });

  describe('finding the status file of a channel directory', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'lq-libvirt-'));
      writeFileSync(join(dir, 'dup.xml'), status('dup', 3, UUID));
      // libvirt's channel directory holds the first 20 bytes of a longer name.
      writeFileSync(
        join(dir, 'a-rather-long-domain-name.xml'),
        status('a-rather-long-domain-name', 9, '22222222-2222-4222-8222-222222222222'),
      );
      writeFileSync(
        join(dir, 'a-rather-long-domain-other.xml'),
        status('a-rather-long-domain-other', 8, '33333333-3333-4333-8333-333333333333'),
      );
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('should find the domain by name and check its runtime id', async () => {
      await expect(findDomainIdentity(dir, 3, 'dup')).resolves.toMatchObject({ uuid: UUID });
      await expect(findDomainIdentity(dir, 4, 'dup')).rejects.toThrow(/describes domain 3/);
      await expect(findDomainIdentity(dir, 1, 'gone')).rejects.toThrow(/no status file/);
    });

    it('should find a shortened name among the files that start with it, by runtime id', async () => {
      await expect(findDomainIdentity(dir, 9, 'a-rather-long-domain')).resolves.toEqual({
        id: 9,
        name: 'a-rather-long-domain-name',
        uuid: '22222222-2222-4222-8222-222222222222',
      });
      await expect(findDomainIdentity(dir, 5, 'a-rather-long-domain')).rejects.toThrow(
        /describes domain/,
      );
    });
  });
});
