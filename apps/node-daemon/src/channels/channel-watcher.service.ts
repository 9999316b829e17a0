import { watch, type FSWatcher } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { isSubjectToken } from '@lq/proto';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';
import { candidateFor, mappedVmId, type ChannelCandidate } from './channel-layout.js';
import { findDomainIdentity, type DomainIdentity } from './libvirt-domain.js';

export interface ChannelChange {
  vmId: string;
  path: string;
  /** The libvirt domain name ('' for the flat layout): shown beside the id. */
  name: string;
}

interface Found {
  path: string;
  name: string;
}

/**
 * Finds VM channel sockets in the configured directories and reports them as they appear,
 * move and disappear: inotify (fs.watch) for promptness, a periodic full rescan because
 * inotify misses things (directories created later, overflowing queues, some filesystems).
 *
 * Events: 'added' (ChannelChange), 'removed' (ChannelChange).
 */
@Injectable()
export class ChannelWatcherService extends EventEmitter implements OnApplicationShutdown {
  private readonly log = new Logger('channels');
  private readonly channels = new Map<string, Found>();
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanQueued = false;
  private debounce: NodeJS.Timeout | undefined;
  private readonly warned = new Set<string>();
  private vmMap: Record<string, string> = {};
  private vmMapMtime = 0;
  /** Domain identities by channel socket (path and inode): read once per domain start. */
  private domains = new Map<string, DomainIdentity>();
  /** Channels without a usable id at the last scan (warned about if still so at the next). */
  private unresolved = new Set<string>();

  constructor(@Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig) {
    super();
  }

  /** Current VM id → socket path. */
  get current(): ReadonlyMap<string, string> {
    return new Map([...this.channels].map(([vmId, c]) => [vmId, c.path]));
  }

  async start(): Promise<void> {
    await this.scan();
    this.timer = setInterval(() => this.requestScan(), this.config.rescanIntervalMs);
    this.timer.unref();
  }

  /** Scans now (coalescing concurrent requests); resolves when the scan is done. */
  scan(): Promise<void> {
    if (this.scanning) {
      this.rescanQueued = true;
      return this.scanning;
    }
    this.scanning = this.doScan().finally(() => {
      this.scanning = undefined;
      if (this.rescanQueued) {
        this.rescanQueued = false;
        void this.scan();
      }
    });
    return this.scanning;
  }

  private requestScan(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.scan(), 30);
    this.debounce.unref();
  }

  private async doScan(): Promise<void> {
    await this.loadVmMap();
    const found = new Map<string, Found>();
    const domains = new Map<string, DomainIdentity>();
    const unresolved = new Set<string>();
    for (const dir of this.config.channelDirs) {
      this.ensureWatch(dir);
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        this.warnOnce(dir, `cannot read channel directory ${dir}: ${(err as Error).message}`);
        continue;
      }
      this.warned.delete(dir);
      for (const entry of entries) {
        const candidate = candidateFor(dir, entry.name, entry.isDirectory());
        if (!candidate) {
          continue;
        }
        if (entry.isDirectory()) {
          this.ensureWatch(`${dir}/${entry.name}`);
        }
        // A flat-layout socket is the entry itself: its type came with the listing (no stat per
        // VM per rescan); a libvirt domain's socket is inside its directory, and its inode
        // tells a restarted domain from the one identified before.
        const socket =
          candidate.domain === undefined && !entry.isSymbolicLink() && entry.isSocket()
            ? entry
            : await stat(candidate.path).then(
                (s) => (s.isSocket() ? s : undefined),
                () => undefined,
              );
        if (!socket) {
          continue;
        }
        let identity: DomainIdentity | undefined;
        let problem = '';
        if (candidate.domain !== undefined) {
          const key = `${candidate.path}:${(socket as { ino: number }).ino}`;
          try {
            identity = this.domains.get(key) ?? (await this.identify(candidate));
            domains.set(key, identity);
          } catch (err) {
            problem = `: ${(err as Error).message}`;
          }
        }
        const vmId = mappedVmId(this.vmMap, candidate, identity?.uuid);
        if (vmId === undefined || !isSubjectToken(vmId)) {
          const message = `channel ${candidate.path} has no usable VM id${problem} (check LQ_LIBVIRT_RUN_DIR, or add it to LQ_VM_MAP_FILE)`;
          // A starting domain's socket may appear before libvirt writes its status file.
          if (this.unresolved.has(candidate.path) || candidate.domain === undefined) {
            this.warnOnce(candidate.path, message);
          } else {
            this.log.debug(message);
          }
          unresolved.add(candidate.path);
          continue;
        }
        const other = found.get(vmId);
        if (other !== undefined && other.path !== candidate.path) {
          this.warnOnce(
            `${vmId}:${candidate.path}`,
            `VM id ${vmId} claimed by both ${other.path} and ${candidate.path}; keeping the first`,
          );
          continue;
        }
        this.warned.delete(candidate.path);
        found.set(vmId, { path: candidate.path, name: identity?.name ?? candidate.domain ?? '' });
      }
    }
    this.domains = domains;
    this.unresolved = unresolved;
    for (const [vmId, c] of this.channels) {
      if (found.get(vmId)?.path !== c.path) {
        this.channels.delete(vmId);
        this.log.log(`channel gone: ${vmId} (${c.path})`);
        this.emit('removed', { vmId, ...c } satisfies ChannelChange);
      }
    }
    for (const [vmId, c] of found) {
      if (!this.channels.has(vmId)) {
        this.channels.set(vmId, c);
        this.log.log(`channel found: ${vmId}${c.name ? ` "${c.name}"` : ''} (${c.path})`);
        this.emit('added', { vmId, ...c } satisfies ChannelChange);
      }
    }
  }

  /**
   * A libvirt domain's UUID and full name, from libvirt's status file on this host: a domain
   * name is unique on one host only, and nothing the guest says about itself is trusted.
   */
  private identify(candidate: ChannelCandidate): Promise<DomainIdentity> {
    return findDomainIdentity(this.config.libvirtRunDir, candidate.domainId!, candidate.domain!);
  }

  private async loadVmMap(): Promise<void> {
    const file = this.config.vmMapFile;
    if (!file) {
      return;
    }
    try {
      const s = await stat(file);
      if (s.mtimeMs === this.vmMapMtime) {
        return;
      }
      const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new Error('must be a JSON object of path or domain → VM id');
      }
      this.vmMap = Object.fromEntries(
        Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'),
      );
      this.vmMapMtime = s.mtimeMs;
      this.warned.delete(file);
    } catch (err) {
      this.warnOnce(file, `VM map ${file} ignored: ${(err as Error).message}`);
    }
  }

  private ensureWatch(dir: string): void {
    if (this.watchers.has(dir)) {
      return;
    }
    try {
      const w = watch(dir, { persistent: false }, () => this.requestScan());
      w.on('error', () => {
        w.close();
        this.watchers.delete(dir);
      });
      this.watchers.set(dir, w);
    } catch {
      // Missing now; the periodic rescan tries again.
    }
  }

  private warnOnce(key: string, message: string): void {
    if (!this.warned.has(key)) {
      this.warned.add(key);
      this.log.warn(message);
    }
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    for (const w of this.watchers.values()) {
      w.close();
    }
    this.watchers.clear();
  }
}
