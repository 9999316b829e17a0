import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareVersions } from '@lq/proto';

export { compareVersions };

/** One release folder as deploy/packaging/build-packages.mjs writes it. */
export interface AgentRelease {
  version: string;
  commit: string;
  dir: string;
  /** File name → sha256, from the folder's SHA256SUMS. */
  files: Map<string, string>;
  /** The signed executables of its release-manifest.json (none without one). */
  artifacts: SignedArtifact[];
}

/** One executable of a release manifest (PROTOCOL.md §10), signed by a release key. */
export interface SignedArtifact {
  target: string;
  file: string;
  sha256: string;
  size: number;
  /** base64 Ed25519 signature over the release statement. */
  signature: string;
}

/** The signed release manifest's name in a release folder. */
export const MANIFEST = 'release-manifest.json';

export interface AgentDownload {
  path: string;
  name: string;
  sha256?: string;
  size: number;
}

/** What the seed's `curl …/agent/latest/linux-amd64` asks for, and the file that answers. */
export const SHORT_NAMES: Record<string, string> = {
  'linux-amd64': 'limiquantix-agent-linux-amd64',
  'linux-arm64': 'limiquantix-agent-linux-arm64',
  'linux-amd64-musl': 'limiquantix-agent-linux-amd64-musl',
  'windows-amd64': 'limiquantix-agent-windows-amd64.exe',
};

/** The files of a release that SHA256SUMS does not list but that are served too. */
const META = ['SHA256SUMS', 'release.json', 'release-manifest.json'];

/**
 * The agent releases the control plane serves: LQ_AGENT_DOWNLOADS_DIR, else the nearest
 * `dist/packages` above this module (what `npm run package` fills). That folder is a release
 * (release.json + SHA256SUMS beside the files) or holds one per subfolder, e.g. 0.1.0/, 0.2.0/;
 * `latest` is the highest version. Read on every request: publishing a release needs no restart,
 * and a download is rare next to what reading two small files costs.
 */
export class AgentReleases {
  constructor(
    private readonly configured?: string,
    private readonly from = dirname(fileURLToPath(import.meta.url)),
  ) {}

  /** The folder releases are read from, or undefined when there is none. */
  root(): string | undefined {
    if (this.configured) {
      return resolve(this.configured);
    }
    for (let d = this.from; d !== dirname(d); d = dirname(d)) {
      const candidate = join(d, 'dist', 'packages');
      if (existsSync(candidate)) {
        return candidate;
      }
    }
    return undefined;
  }

  /** Every release found, newest first. A folder whose files do not parse is skipped. */
  list(): AgentRelease[] {
    const root = this.root();
    if (!root || !existsSync(root)) {
      return [];
    }
    const dirs = [root];
    for (const entry of readdirSync(root, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        dirs.push(join(root, entry.name));
      }
    }
    const releases = dirs.flatMap((dir) => {
      const release = AgentReleases.read(dir);
      return release ? [release] : [];
    });
    return releases.sort((a, b) => compareVersions(b.version, a.version));
  }

  /** `latest` or an exact version. */
  release(version: string): AgentRelease | undefined {
    const all = this.list();
    return version === 'latest' ? all[0] : all.find((r) => r.version === version);
  }

  /** A file of a release by its name (or a SHORT_NAMES alias); only listed files are served. */
  download(release: AgentRelease, name: string): AgentDownload | undefined {
    const file = SHORT_NAMES[name] ?? name;
    if (!release.files.has(file) && !META.includes(file)) {
      return undefined;
    }
    const path = join(release.dir, file);
    try {
      const st = statSync(path);
      return st.isFile()
        ? { path, name: file, sha256: release.files.get(file), size: st.size }
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** The signed artifacts of a release folder's manifest; [] without one (or a bad one). */
  static manifest(dir: string, version: string): SignedArtifact[] {
    const path = join(dir, MANIFEST);
    if (!existsSync(path)) {
      return [];
    }
    try {
      return parseManifest(readFileSync(path, 'utf8'), version);
    } catch {
      return [];
    }
  }

  private static read(dir: string): AgentRelease | undefined {
    try {
      const meta = JSON.parse(readFileSync(join(dir, 'release.json'), 'utf8')) as {
        version?: unknown;
        commit?: unknown;
      };
      if (typeof meta.version !== 'string') {
        return undefined;
      }
      const files = new Map<string, string>();
      for (const line of readFileSync(join(dir, 'SHA256SUMS'), 'utf8').split('\n')) {
        const m = /^([0-9a-f]{64}) [ *]([^/\\]+)$/.exec(line);
        if (m && !m[2]!.startsWith('.')) {
          files.set(m[2]!, m[1]!);
        }
      }
      return {
        version: meta.version,
        commit: typeof meta.commit === 'string' ? meta.commit : 'unknown',
        dir,
        files,
        artifacts: AgentReleases.manifest(dir, meta.version),
      };
    } catch {
      return undefined;
    }
  }
}

/** A release manifest's artifacts; throws naming what is wrong. */
export function parseManifest(text: string, version: string): SignedArtifact[] {
  const m = JSON.parse(text) as { version?: unknown; artifacts?: unknown };
  if (m.version !== version) {
    throw new Error(`${MANIFEST} is for version ${String(m.version)}, not ${version}`);
  }
  if (!Array.isArray(m.artifacts)) {
    throw new Error(`${MANIFEST} has no artifacts list`);
  }
  return m.artifacts.map((a: Partial<SignedArtifact>, i) => {
    if (
      typeof a.target !== 'string' ||
      !/^[a-z0-9-]{1,64}$/.test(a.target) ||
      typeof a.file !== 'string' ||
      !/^[A-Za-z0-9._-]{1,200}$/.test(a.file) ||
      a.file.startsWith('.') ||
      typeof a.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(a.sha256) ||
      typeof a.size !== 'number' ||
      !Number.isSafeInteger(a.size) ||
      a.size < 1 ||
      typeof a.signature !== 'string' ||
      Buffer.from(a.signature, 'base64').length !== 64
    ) {
      throw new Error(
        `${MANIFEST} artifacts[${i}] must have target, file, sha256 (hex), size and signature (base64)`,
      );
    }
    return {
      target: a.target,
      file: a.file,
      sha256: a.sha256,
      size: a.size,
      signature: a.signature,
    };
  });
}
