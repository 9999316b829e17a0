import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Subscription } from '@nats-io/transport-node';
import { readHeartbeatHeader, subjects } from '@lq/proto';
import { NatsService } from './nats.service.js';

/** What changed of a node daemon: it `restarted`, or its NATS connection `reconnected`. */
export type DaemonChange = 'restarted' | 'reconnected';

/**
 * Watches every node daemon's heartbeat (every replica sees them all, not as a queue group) for
 * the two changes that lose what was in flight to a node: the daemon restarted (it forgot the
 * requests it held) or its own NATS connection came back (a request on its way to it, or its
 * reply on the way back, may have gone with the server that died; PROTOCOL.md §9). Only the
 * heartbeat's header is read: the inventory decodes the rest.
 */
@Injectable()
export class NodeDaemonWatch implements OnApplicationShutdown {
  private sub: Subscription | undefined;
  /** Per node: when its daemon started and how many reconnections its last heartbeat named. */
  private readonly seen = new Map<string, { startedAtMs: number; reconnects: number }>();
  private readonly listeners = new Map<string, Set<(change: DaemonChange) => void>>();
  private readonly everyNode = new Set<(nodeId: string, change: DaemonChange) => void>();

  constructor(@Inject(NatsService) private readonly nats: NatsService) {}

  /** Subscribes to the heartbeats; NATS must be connected. */
  start(): void {
    this.sub = this.nats.connection.subscribe(subjects.allHeartbeats, {
      callback: (err, msg) => {
        if (!err) {
          this.heartbeat(msg.subject, msg.data);
        }
      },
    });
  }

  /** One heartbeat as it arrived on `subject` (public for the unit test). */
  heartbeat(subject: string, data: Uint8Array): void {
    let hb;
    try {
      hb = readHeartbeatHeader(data);
    } catch {
      return; // not a heartbeat; the inventory logs those
    }
    // Only node X may publish on X's subject (NATS permissions): the subject names it.
    const nodeId = subject.split('.')[3]!;
    if (hb.nodeId !== nodeId || hb.startedAtMs === undefined) {
      return;
    }
    const before = this.seen.get(nodeId);
    this.seen.set(nodeId, { startedAtMs: hb.startedAtMs, reconnects: hb.natsReconnects });
    if (!before) {
      return;
    }
    const change: DaemonChange | undefined =
      before.startedAtMs !== hb.startedAtMs
        ? 'restarted'
        : before.reconnects !== hb.natsReconnects
          ? 'reconnected'
          : undefined;
    if (!change) {
      return;
    }
    for (const l of [...(this.listeners.get(nodeId) ?? [])]) {
      l(change);
    }
    for (const l of [...this.everyNode]) {
      l(nodeId, change);
    }
  }

  /** Calls `listener` on each change of `nodeId`'s daemon until the returned function is called. */
  onNode(nodeId: string, listener: (change: DaemonChange) => void): () => void {
    let set = this.listeners.get(nodeId);
    if (!set) {
      set = new Set();
      this.listeners.set(nodeId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(nodeId) === set) {
        this.listeners.delete(nodeId);
      }
    };
  }

  /** Calls `listener` on each change of any node's daemon. */
  onAnyNode(listener: (nodeId: string, change: DaemonChange) => void): void {
    this.everyNode.add(listener);
  }

  onApplicationShutdown(): void {
    this.sub?.unsubscribe();
  }
}
