import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { Msg, Subscription } from '@nats-io/transport-node';
import {
  AgentEventSchema,
  NodeHeartbeatSchema,
  VmTelemetrySchema,
  isSubjectToken,
  subjects,
} from '@lq/proto';
import { CONTROL_PLANE_CONFIG, type ControlPlaneConfig } from '../config/env.schema.js';
import { InventoryMetrics } from './inventory.metrics.js';
import { NatsService } from '../nats/nats.service.js';
import { idsOfSubject } from './inventory.mapping.js';
import { InventoryRepository } from './inventory.repository.js';
import { LatestPerKeyQueue } from './latest-per-key.queue.js';
import { VmClaimsService } from './vm-claims.service.js';
import { TelemetryRecorder } from '../telemetry/telemetry-recorder.js';

type Kind = 'heartbeat' | 'event' | 'telemetry';

const SHUTDOWN_GRACE_MS = 5000;
// One line per failing key and window, so a database outage does not flood the log.
const ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * Keeps the inventory current from what node daemons publish. Replicas share the work through
 * the queue group; within one replica the messages of one node (heartbeats) or one node's VM
 * (events, telemetry: another node's messages about the VM must not displace its owner's) are
 * written in order, and a burst that arrives during a write collapses to its
 * newest message (each is a whole snapshot). Telemetry reports are also recorded, each one, into
 * the history (telemetry/telemetry-recorder.ts). A failed write is logged and dropped: the next
 * heartbeat, a few seconds later, brings the state again.
 */
@Injectable()
export class InventorySubscriber implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly log = new Logger('inventory');
  private readonly subs: Subscription[] = [];
  private readonly lastErrorLog = new Map<string, number>();
  private readonly queue = new LatestPerKeyQueue(
    (key, err) => this.failed(key, err),
    (key) => this.metrics.message(kindOfKey(key), 'coalesced'),
  );

  constructor(
    @Inject(CONTROL_PLANE_CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(InventoryRepository) private readonly repo: InventoryRepository,
    @Inject(InventoryMetrics) private readonly metrics: InventoryMetrics,
    @Inject(VmClaimsService) private readonly claims: VmClaimsService,
    @Inject(TelemetryRecorder) private readonly history: TelemetryRecorder,
  ) {}

  start(): Promise<void> {
    const nc = this.nats.connection;
    const queue = this.config.nats.queueGroup;
    const listen = (subject: string, kind: Kind) => {
      this.subs.push(
        nc.subscribe(subject, {
          queue,
          callback: (err, msg) => {
            if (err) {
              this.log.error(`subscription ${subject}: ${err.message}`);
              return;
            }
            this.onMessage(kind, msg);
          },
        }),
      );
    };
    listen(subjects.allHeartbeats, 'heartbeat');
    listen(subjects.allEvents, 'event');
    listen(subjects.allTelemetry, 'telemetry');
    this.log.log(`following node daemons (queue group ${queue})`);
    // Resolves once the server has the subscriptions, so a caller can rely on them.
    return nc.flush();
  }

  private onMessage(kind: Kind, msg: Msg): void {
    const ids = idsOfSubject(msg.subject);
    switch (kind) {
      case 'heartbeat': {
        const hb = this.decode(kind, msg, NodeHeartbeatSchema);
        if (hb && this.matches(kind, msg.subject, ids, hb.nodeId)) {
          this.queue.push(`heartbeat:${hb.nodeId}`, async () => {
            const result = await this.repo.applyHeartbeat(hb);
            this.metrics.message(kind, result.applied ? 'applied' : 'outdated');
            this.claims.report(hb.nodeId, 'heartbeat', result);
          });
        }
        return;
      }
      case 'event': {
        const ev = this.decode(kind, msg, AgentEventSchema);
        if (ev && this.matches(kind, msg.subject, ids, ev.nodeId, ev.vmId)) {
          this.queue.push(`event:${ev.nodeId}:${ev.vmId}`, async () => {
            const claims = await this.repo.applyEvent(ev);
            this.metrics.message(kind, 'applied');
            this.claims.report(ev.nodeId, 'event', claims);
          });
        }
        return;
      }
      case 'telemetry': {
        const t = this.decode(kind, msg, VmTelemetrySchema);
        if (t && this.matches(kind, msg.subject, ids, t.nodeId, t.vmId)) {
          // Every report goes into the history (batched there), ahead of the coalescing below,
          // which keeps only the latest report of a burst.
          this.history.record(t);
          this.queue.push(`telemetry:${t.nodeId}:${t.vmId}`, async () => {
            const applied = await this.repo.applyTelemetry(t);
            this.metrics.message(kind, applied ? 'applied' : 'ignored');
          });
        }
        return;
      }
    }
  }

  private decode<D extends DescMessage>(
    kind: Kind,
    msg: Msg,
    schema: D,
  ): MessageShape<D> | undefined {
    try {
      return fromBinary(schema, msg.data);
    } catch (err) {
      this.metrics.message(kind, 'invalid');
      this.log.warn(`dropped ${msg.subject}: not a ${schema.name}: ${(err as Error).message}`);
      return undefined;
    }
  }

  // NATS permissions are per subject: a daemon may only speak for the node (and VMs) its
  // subject names, so a payload naming others is dropped. (Which VMs a node may speak for is
  // the inventory's to decide: one node owns each.)
  private matches(
    kind: Kind,
    subject: string,
    ids: { nodeId?: string; vmId?: string },
    nodeId: string,
    vmId?: string,
  ): boolean {
    const ok =
      isSubjectToken(nodeId) &&
      ids.nodeId === nodeId &&
      (vmId === undefined || (isSubjectToken(vmId) && ids.vmId === vmId));
    if (!ok) {
      this.metrics.message(kind, 'invalid');
      this.log.warn(`dropped ${subject}: payload names node ${nodeId} vm ${vmId ?? '-'}`);
    }
    return ok;
  }

  private failed(key: string, err: unknown): void {
    this.metrics.message(kindOfKey(key), 'failed');
    const now = Date.now();
    if (now - (this.lastErrorLog.get(key) ?? 0) >= ERROR_LOG_INTERVAL_MS) {
      this.lastErrorLog.set(key, now);
      this.log.error(`could not apply ${key}: ${(err as Error).message}`);
    }
    if (this.lastErrorLog.size > 10_000) {
      this.lastErrorLog.clear();
    }
  }

  /** Stops taking messages and lets the writes under way finish (bounded) before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    this.unsubscribe();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.queue.idle(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  onApplicationShutdown(): void {
    this.unsubscribe();
  }

  private unsubscribe(): void {
    for (const sub of this.subs.splice(0)) {
      if (!sub.isClosed()) {
        sub.unsubscribe();
      }
    }
  }
}

function kindOfKey(key: string): Kind {
  return key.slice(0, key.indexOf(':')) as Kind;
}
