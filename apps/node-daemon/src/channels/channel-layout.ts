import { basename, join } from 'node:path';
import { isSubjectToken } from '@lq/proto';

/** The virtio-serial port name the platform's agent channel uses. */
export const AGENT_PORT_NAME = 'org.limiquantix.agent.0';

const LIBVIRT_DOMAIN_DIR = /^domain-\d+-(.+)$/;
const FLAT_SOCKET = /^(.+)\.sock$/;

export interface ChannelCandidate {
  path: string;
  /** The VM id the layout implies (a mapping file may override it). */
  vmId: string | undefined;
  /** For the libvirt layout: the domain name. */
  domain?: string;
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
    const domain = m[1]!;
    return {
      path: join(dir, entry, AGENT_PORT_NAME),
      vmId: isSubjectToken(domain) ? domain : undefined,
      domain,
    };
  }
  const m = FLAT_SOCKET.exec(entry);
  if (!m) {
    return undefined;
  }
  return { path: join(dir, entry), vmId: isSubjectToken(m[1]!) ? m[1] : undefined };
}

/**
 * The mapping file (LQ_VM_MAP_FILE) names VM ids by socket path, by libvirt domain name or by
 * socket file name: `{ "/var/lib/.../org.limiquantix.agent.0": "vm-42", "web-1": "vm-43" }`.
 */
export function mappedVmId(
  map: Record<string, string>,
  candidate: ChannelCandidate,
): string | undefined {
  return (
    map[candidate.path] ??
    (candidate.domain !== undefined ? map[candidate.domain] : undefined) ??
    map[basename(candidate.path)] ??
    candidate.vmId
  );
}
