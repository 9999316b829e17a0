import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type AgentInfo,
  AgentInfoSchema,
  type AgentUpdateResult,
  type AgentLimitsSchema,
  type NetworkInterface,
  NetworkInterfaceSchema,
  type OsInfo,
  OsInfoSchema,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';

export interface AgentInfoExtras {
  agentVersion: string;
  protocolVersion: number;
  capabilities: string[];
  limits: MessageInitShape<typeof AgentLimitsSchema>;
  startedAt: Date;
  /** The build target (AgentInfo.agent_target). */
  agentTarget?: string;
  /** How the last self-update ended. */
  lastUpdate?: AgentUpdateResult;
  /** Where OS facts come from (default: read them now; see cachedOsInfo). */
  osInfo?: () => Promise<OsInfo>;
}

export type NetworkInterfacesSource = () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;

// os-release(5): the file in /etc takes precedence, /usr/lib holds the vendor's copy.
const OS_RELEASE_FALLBACK = '/usr/lib/os-release';

/** What the guest is and what the agent can do; sent in AgentReady and GetInfoResponse. */
export async function collectAgentInfo(
  config: AgentConfig,
  extras: AgentInfoExtras,
): Promise<AgentInfo> {
  return create(AgentInfoSchema, {
    agentVersion: extras.agentVersion,
    protocolVersion: extras.protocolVersion,
    hostname: os.hostname(),
    os: await (extras.osInfo?.() ?? collectOsInfo(config.system.os_release_file)),
    capabilities: extras.capabilities,
    interfaces: listInterfaces(interfaceFilter(config.network.exclude_interfaces)),
    limits: extras.limits,
    startedAt: timestampFromDate(extras.startedAt),
    agentTarget: extras.agentTarget ?? '',
    lastUpdate: extras.lastUpdate,
  });
}

/** os-release fields plus uname; a missing os-release leaves its fields empty. */
export async function collectOsInfo(osReleaseFile: string): Promise<OsInfo> {
  return osInfoOf(await readOsRelease(osReleaseFile), unameFacts());
}

interface UnameFacts {
  kernelRelease: string;
  kernelVersion: string;
  arch: string;
}

function unameFacts(): UnameFacts {
  return { kernelRelease: os.release(), kernelVersion: os.version(), arch: os.machine() };
}

function osInfoOf(release: Record<string, string>, uname: UnameFacts): OsInfo {
  return create(OsInfoSchema, {
    name: release.NAME ?? '',
    version: release.VERSION_ID ?? '',
    versionName: release.VERSION ?? '',
    id: release.ID ?? '',
    prettyName: release.PRETTY_NAME ?? '',
    ...uname,
  });
}

/** What says an os-release file changed: which file, its inode, size and mtime. */
function osReleaseStamp(file: string): string {
  for (const candidate of file === '/etc/os-release' ? [file, OS_RELEASE_FALLBACK] : [file]) {
    const st = statSync(candidate, { throwIfNoEntry: false, bigint: true });
    if (st) {
      return `${candidate}:${st.ino}:${st.size}:${st.mtimeNs}`;
    }
  }
  return 'missing';
}

/** How long a look at os-release is trusted (cachedOsInfo). */
export const OS_RELEASE_RECHECK_MS = 1000;

/**
 * The OS facts, kept (os.info and GetInfo answer from here): uname read once (the kernel does
 * not change under a running process), os-release read at the first call and again only when
 * its inode, size or mtime changed (an upgrade rewrites it). Checking costs one stat(2), made
 * synchronously (less than a trip through the thread pool would), and at most once per
 * recheckMs: a host polling os.info gets the kept answer without a system call, and an upgrade
 * shows within recheckMs. A failed read is not kept.
 */
export function cachedOsInfo(
  osReleaseFile: string,
  recheckMs = OS_RELEASE_RECHECK_MS,
): () => Promise<OsInfo> {
  const uname = unameFacts();
  let cached: { stamp: string; value: Promise<OsInfo> } | undefined;
  let checkedAt = -Infinity;
  return () => {
    const now = performance.now();
    if (cached !== undefined && now - checkedAt < recheckMs) {
      return cached.value;
    }
    checkedAt = now;
    const stamp = osReleaseStamp(osReleaseFile);
    if (cached === undefined || cached.stamp !== stamp) {
      const value = readOsRelease(osReleaseFile).then((release) => osInfoOf(release, uname));
      const entry = { stamp, value };
      cached = entry;
      value.catch(() => {
        if (cached === entry) {
          cached = undefined;
        }
      });
    }
    return cached.value;
  };
}

export async function readOsRelease(file: string): Promise<Record<string, string>> {
  for (const candidate of file === '/etc/os-release' ? [file, OS_RELEASE_FALLBACK] : [file]) {
    try {
      return parseOsRelease(await readFile(candidate, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        return {};
      }
    }
  }
  return {};
}

/** KEY=value lines with shell-style quoting (os-release(5)); comments and junk are skipped. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) {
      continue;
    }
    out[m[1]] = unquote(m[2]);
  }
  return out;
}

function unquote(value: string): string {
  const q = value[0];
  if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) {
    const inner = value.slice(1, -1);
    return q === '"' ? inner.replace(/\\(["\\$`])/g, '$1') : inner;
  }
  return value;
}

/**
 * Compiles shell-style patterns (`*` any run, `?` one character) into a test that says whether
 * an interface is excluded.
 */
export function interfaceFilter(patterns: readonly string[]): (name: string) => boolean {
  if (patterns.length === 0) {
    return () => false;
  }
  const source = patterns
    .map((p) =>
      p
        .split('')
        .map((ch) =>
          ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&'),
        )
        .join(''),
    )
    .join('|');
  const re = new RegExp(`^(?:${source})$`);
  return (name) => re.test(name);
}

/**
 * Interfaces with their MAC and CIDR addresses, as os.networkInterfaces() reports them (so only
 * interfaces holding an address). IPv6 link-local addresses are kept.
 */
export function listInterfaces(
  excluded: (name: string) => boolean,
  source: NetworkInterfacesSource = os.networkInterfaces,
): NetworkInterface[] {
  const out: NetworkInterface[] = [];
  for (const [name, addrs] of Object.entries(source())) {
    if (!addrs || excluded(name)) {
      continue;
    }
    const ipv4: string[] = [];
    const ipv6: string[] = [];
    for (const a of addrs) {
      const cidr = a.cidr ?? a.address;
      if (a.family === 'IPv4') {
        ipv4.push(cidr);
      } else {
        ipv6.push(cidr);
      }
    }
    out.push(create(NetworkInterfaceSchema, { name, mac: addrs[0]?.mac ?? '', ipv4, ipv6 }));
  }
  return out;
}
