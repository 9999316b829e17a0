import { basename, join } from 'node:path';
import { isSubjectToken } from '@lq/proto';

/** The virtio-serial port name the platform's agent channel uses. */
export const AGENT_PORT_NAME = 'org.limiquantix.agent.0';

const LIBVIRT_DOMAIN_DIR = /^domain-(\d{1,9})-(.+)$/;
const FLAT_SOCKET = /^(.+)\.sock$/;

export interface ChannelCandidate {
  path: string;
  /**
   * The VM id the layout implies: the file name of the flat layout. The libvirt layout implies
   * none (a domain name is not unique across hosts): its UUID comes from libvirt's status file.
   */
  vmId: string | undefined;
  /** For the libvirt layout: the domain name as the directory holds it (at most 20 bytes). */
  domain?: string;
  /** For the libvirt layout: the domain's runtime id. */
  domainId?: number;
}

/**
 * Where a VM's channel socket may be, given one entry of a watched directory: the flat layout
 * `<dir>/<vmId>.sock` or libvirt's `<dir>/domain-<id>-<name>/org.limiquantix.agent.0`.
 */
export function candidateFor(
  dir: string,
  entry: string,
  isDirectory: boolean,
): ChannelCandidate | undefined {
  if (isDirectory) {
    const m = LIBVIRT_DOMAIN_DIR.exec(entry);
    if (!m) {
      return undefined;
    }
    return {
      path: join(dir, entry, AGENT_PORT_NAME),
      vmId: undefined,
      domain: m[2]!,
      domainId: Number(m[1]),
    };
  }
  const m = FLAT_SOCKET.exec(entry);
  if (!m) {
    return undefined;
  }
  return { path: join(dir, entry), vmId: isSubjectToken(m[1]!) ? m[1] : undefined };
}

/**
 * The mapping file (LQ_VM_MAP_FILE) names VM ids by socket path, by libvirt domain UUID or name,
 * or by socket file name: `{ "/var/lib/.../org.limiquantix.agent.0": "vm-42", "web-1": "vm-43" }`.
 * Without an entry, a libvirt domain is its UUID and a flat socket its file name.
 */
export function mappedVmId(
  map: Record<string, string>,
  candidate: ChannelCandidate,
  uuid?: string,
): string | undefined {
  const own = (key: string | undefined) =>
    key !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
  return (
    own(candidate.path) ??
    own(uuid) ??
    own(candidate.domain) ??
    // libvirt's socket file name is the same in every domain's directory.
    (candidate.domain === undefined ? own(basename(candidate.path)) : undefined) ??
    uuid ??
    candidate.vmId
  );
}
