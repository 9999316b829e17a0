import type { OnModuleDestroy } from '@nestjs/common';
import type { VM } from '@lq/proto';
import type { NodeView } from '../inventory/inventory.types.js';
import type { VmListErrorView, VmListSnapshotView } from '@lq/api';
import { summarizeVm } from './vm-summary.js';

/** How often a feed reads the inventory while someone watches it. */
export const VM_LIST_POLL_MS = 2000;

/** What a watcher receives: the list (only when it changed) or why it could not be read. */
export type FeedEvent = { kind: 'vms'; json: string } | { kind: 'error'; json: string };
export type FeedListener = (event: FeedEvent) => void;

/** The inventory reads a feed needs (InventoryService in the app; a fake in unit tests). */
export interface VmListSource {
  listVms(projects: 'all' | string[]): Promise<VM[]>;
  listNodes(): Promise<NodeView[]>;
  connectedSince(ids: string[]): Promise<Map<string, string | null>>;
  /** The newest agent release on offer (what makes an agent outdated). */
  latestAgent?(): string | null;
}

interface ScopeFeed {
  scope: 'all' | string[];
  listeners: Set<FeedListener>;
  /** The last list sent, so an unchanged list is not sent again and a newcomer gets it at once. */
  last?: string;
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

/**
 * The live VM list behind GET /api/vms/stream. Watchers with the same scope (the projects they
 * may read) share one feed, which reads the inventory every VM_LIST_POLL_MS — one query per
 * scope, however many browsers watch — and tells them only when the list changed. Polling the
 * inventory rather than following NATS keeps every replica's view the same as GET /api/vms.
 */
export class VmListFeed implements OnModuleDestroy {
  private readonly feeds = new Map<string, ScopeFeed>();

  constructor(
    private readonly source: VmListSource,
    private readonly pollMs = VM_LIST_POLL_MS,
  ) {}

  /** Number of scopes being polled (for tests and metrics). */
  get activeFeeds(): number {
    return this.feeds.size;
  }

  subscribe(scope: 'all' | string[], listener: FeedListener): () => void {
    const key = scope === 'all' ? '*' : [...scope].sort().join(',');
    let feed = this.feeds.get(key);
    if (!feed) {
      feed = { scope, listeners: new Set(), stopped: false };
      this.feeds.set(key, feed);
      void this.tick(feed);
    } else if (feed.last !== undefined) {
      listener({ kind: 'vms', json: feed.last });
    }
    feed.listeners.add(listener);
    const owned = feed;
    return () => {
      owned.listeners.delete(listener);
      if (owned.listeners.size === 0 && !owned.stopped) {
        owned.stopped = true;
        clearTimeout(owned.timer);
        this.feeds.delete(key);
      }
    };
  }

  onModuleDestroy(): void {
    for (const feed of this.feeds.values()) {
      feed.stopped = true;
      clearTimeout(feed.timer);
    }
    this.feeds.clear();
  }

  private async tick(feed: ScopeFeed): Promise<void> {
    let event: FeedEvent | undefined;
    try {
      const [vms, nodes] = await Promise.all([
        this.source.listVms(feed.scope),
        this.source.listNodes(),
      ]);
      const since = await this.source.connectedSince(vms.map((vm) => vm.id));
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const snapshot: VmListSnapshotView = {
        vms: vms.map((vm) =>
          summarizeVm(vm, byId, since.get(vm.id) ?? null, this.source.latestAgent?.() ?? null),
        ),
      };
      const json = JSON.stringify(snapshot);
      if (json !== feed.last) {
        feed.last = json;
        event = { kind: 'vms', json };
      }
    } catch (err) {
      // Sent every time it fails; the next good read is sent even if the list did not change.
      feed.last = undefined;
      const e = err as Error & { code?: unknown };
      event = {
        kind: 'error',
        json: JSON.stringify({
          code: typeof e.code === 'string' ? e.code : 'STORE_UNAVAILABLE',
          message: e.message,
        } satisfies VmListErrorView),
      };
    }
    if (feed.stopped) {
      return;
    }
    if (event) {
      for (const listener of feed.listeners) {
        listener(event);
      }
    }
    feed.timer = setTimeout(() => void this.tick(feed), this.pollMs);
  }
}
