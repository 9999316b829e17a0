import { watch, type FSWatcher } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { isSubjectToken } from '@lq/proto';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';
import { candidateFor, mappedVmId } from './channel-layout.js';

export interface ChannelChange {
  vmId: string;
  path: string;
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
  private readonly channels = new Map<string, string>();
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanQueued = false;
  private debounce: NodeJS.Timeout | undefined;
  private readonly warned = new Set<string>();
  private vmMap: Record<string, string> = {};
  private vmMapMtime = 0;

  constructor(@Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig) {
    super();
  }

  /** Current VM id → socket path. */
  get current(): ReadonlyMap<string, string> {
    return this.channels;
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
    const found = new Map<string, string>();
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
        const isSocket = await stat(candidate.path).then(
          (s) => s.isSocket(),
          () => false,
        );
        if (!isSocket) {
          continue;
        }
        const vmId = mappedVmId(this.vmMap, candidate);
        if (vmId === undefined || !isSubjectToken(vmId)) {
          this.warnOnce(
            candidate.path,
            `channel ${candidate.path} has no usable VM id (add it to LQ_VM_MAP_FILE)`,
          );
          continue;
        }
        const other = found.get(vmId);
        if (other !== undefined && other !== candidate.path) {
          this.warnOnce(
            `${vmId}:${candidate.path}`,
            `VM id ${vmId} claimed by both ${other} and ${candidate.path}; keeping the first`,
          );
          continue;
        }
        found.set(vmId, candidate.path);
      }
    }
    for (const [vmId, path] of this.channels) {
      if (found.get(vmId) !== path) {
        this.channels.delete(vmId);
        this.log.log(`channel gone: ${vmId} (${path})`);
        this.emit('removed', { vmId, path } satisfies ChannelChange);
      }
    }
    for (const [vmId, path] of found) {
      if (!this.channels.has(vmId)) {
        this.channels.set(vmId, path);
        this.log.log(`channel found: ${vmId} (${path})`);
        this.emit('added', { vmId, path } satisfies ChannelChange);
      }
    }
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
