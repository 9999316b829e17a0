import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** What libvirt says about a running domain: its runtime id, name and UUID. */
export interface DomainIdentity {
  /** The runtime id (`domain-<id>-…` in channel paths); changes at every start. */
  id: number;
  name: string;
  /** Lower case, 8-4-4-4-12 hex: unique across hosts, kept across restarts and migrations. */
  uuid: string;
}

// libvirt shortens the name in per-domain paths to this many bytes (virDomainDefGetShortName),
// so a channel directory of a longer name holds only its prefix.
const SHORT_NAME_MAX_BYTES = 20;
// A status file holds the live domain XML and the driver's state (capabilities, jobs):
// tens of KiB, rarely more. Anything past this is not read.
export const STATUS_XML_MAX_BYTES = 4 * 1024 * 1024;
// Status files looked at when the channel directory holds a shortened name.
const PREFIX_CANDIDATES_MAX = 64;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
};

function unescapeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) => {
    if (e.startsWith('#x')) {
      return String.fromCodePoint(parseInt(e.slice(2), 16));
    }
    if (e.startsWith('#')) {
      return String.fromCodePoint(parseInt(e.slice(1), 10));
    }
    return ENTITIES[e]!;
  });
}

/**
 * The identity in libvirt's status XML of a running domain (`/run/libvirt/qemu/<name>.xml`:
 * `<domstatus …><domain type='kvm' id='N'><name>…</name><uuid>…</uuid>…`), or in the live domain
 * XML alone. `<name>` and `<uuid>` are the first children of `<domain>` that carry those names.
 */
export function parseDomainStatus(xml: string): DomainIdentity {
  const open = /<domain\s([^>]*)>/.exec(xml);
  if (!open) {
    throw new Error('no <domain> element');
  }
  const id = /\bid=['"](\d+)['"]/.exec(open[1]!);
  if (!id) {
    throw new Error('the <domain> element has no id (the domain is not running)');
  }
  const body = xml.slice(open.index + open[0].length);
  const name = /<name>([^<]*)<\/name>/.exec(body);
  const uuid = /<uuid>\s*([^<\s]*)\s*<\/uuid>/.exec(body);
  if (!name || !uuid) {
    throw new Error(`the <domain> element has no ${name ? '<uuid>' : '<name>'}`);
  }
  const normalized = uuid[1]!.toLowerCase();
  if (!UUID.test(normalized)) {
    throw new Error(`<uuid> ${JSON.stringify(uuid[1]!.slice(0, 64))} is not a UUID`);
  }
  return { id: Number(id[1]), name: unescapeXml(name[1]!), uuid: normalized };
}

async function readBounded(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    if (size > STATUS_XML_MAX_BYTES) {
      throw new Error(`larger than ${STATUS_XML_MAX_BYTES} bytes`);
    }
    const buf = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buf, 0, size, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Finds the UUID of the domain behind a libvirt channel directory `domain-<id>-<shortName>` in
 * libvirt's status files on this host (LQ_LIBVIRT_RUN_DIR), never in anything the guest says:
 * `<runDir>/<shortName>.xml`, or for a shortened name the status files starting with it, whose
 * runtime id must match the directory's.
 */
export async function findDomainIdentity(
  runDir: string,
  domainId: number,
  shortName: string,
): Promise<DomainIdentity> {
  const problems: string[] = [];
  const tryFile = async (file: string): Promise<DomainIdentity | undefined> => {
    const path = join(runDir, file);
    try {
      const found = parseDomainStatus(await readBounded(path));
      if (found.id === domainId && found.name.startsWith(shortName)) {
        return found;
      }
      problems.push(`${path} describes domain ${found.id} (${found.name})`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') {
        problems.push(`${path}: ${e.message}`);
      }
    }
    return undefined;
  };
  const exact = await tryFile(`${shortName}.xml`);
  if (exact) {
    return exact;
  }
  if (Buffer.byteLength(shortName) >= SHORT_NAME_MAX_BYTES - 3) {
    // Multi-byte characters may be cut a little before the limit.
    let files: string[] = [];
    try {
      files = await readdir(runDir);
    } catch (err) {
      problems.push(`${runDir}: ${(err as Error).message}`);
    }
    const candidates = files
      .filter((f) => f.startsWith(shortName) && f.endsWith('.xml') && f !== `${shortName}.xml`)
      .slice(0, PREFIX_CANDIDATES_MAX);
    for (const file of candidates) {
      const found = await tryFile(file);
      if (found) {
        return found;
      }
    }
  }
  throw new Error(
    problems.length > 0
      ? problems.join('; ')
      : `no status file ${join(runDir, `${shortName}.xml`)} of domain ${domainId}`,
  );
}
