import { hostname } from 'node:os';
import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { create, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { timestampFromDate, timestampNow } from '@bufbuild/protobuf/wkt';
import {
  AgentEventSchema,
  ExecOutputEventSchema,
  NodeHeartbeatSchema,
  VmAgentStatusSchema,
  VmTelemetrySchema,
  isSubjectToken,
  subjects,
  type ExecOutputEvent,
  type NodeHeartbeat,
  type TelemetryReport,
} from '@lq/proto';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';
import { NatsService } from '../nats/nats.service.js';
import {
  AgentRegistryService,
  type AgentEventNotice,
  type VmAgent,
} from '../agents/agent-registry.service.js';
import { GuestRelayService } from '../relay/guest-relay.service.js';

export const DAEMON_VERSION = '0.1.0';
// State changes come in bursts (an agent restarting flaps through several states).
const CHANGE_DEBOUNCE_MS = 50;
const VMS_FIELD = NodeHeartbeatSchema.field.vms.number;
const LAST_SEEN_FIELD = VmAgentStatusSchema.field.lastSeen.number;

/** What a VM's status is made of, but its last_seen (which moves with every agent message). */
function statusKey(vm: VmAgent): unknown[] {
  const c = vm.client;
  return [
    vm.name,
    vm.channelPath,
    c.state,
    c.agentVersion,
    c.protocolVersion,
    // Replaced, never changed in place, when the agent says something new.
    c.capabilities,
    c.limits,
    c.info,
    c.connectedSince?.getTime(),
  ];
}

/**
 * Publishes what the node knows: a heartbeat with every VM and its agent state on a timer and
 * soon after any change, an event per agent connection/readiness/loss, and agent telemetry as it
 * arrives. Publishing while NATS is reconnecting is buffered by the client.
 */
@Injectable()
export class InventoryPublisherService implements OnModuleDestroy {
  private readonly log = new Logger('inventory');
  private readonly startedAt = new Date();
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  /** The last state_seq published (nextStateSeq). */
  private lastStateSeq = 0n;
  /** Each VM's status encoded without last_seen, and what it was encoded from. */
  private readonly encoded = new WeakMap<VmAgent, { key: unknown[]; bytes: Uint8Array }>();

  constructor(
    @Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig,
    @Inject(NatsService) private readonly nats: NatsService,
    @Inject(AgentRegistryService) private readonly agents: AgentRegistryService,
    @Inject(GuestRelayService) private readonly relay: GuestRelayService,
  ) {}

  start(): void {
    this.agents.on('changed', () => this.heartbeatSoon());
    this.agents.on('agent-event', (notice: AgentEventNotice) => this.publishEvent(notice));
    this.agents.on('telemetry', (vm: VmAgent, report: TelemetryReport) =>
      this.publishTelemetry(vm, report),
    );
    this.agents.on('exec-output', (_vm: VmAgent, event: ExecOutputEvent) =>
      this.publishExecOutput(event),
    );
    // Requesters learn at once that what was in flight with the old server may be lost.
    this.nats.onReconnect(() => this.heartbeatSoon());
    this.timer = setInterval(() => this.publishHeartbeat(), this.config.heartbeatIntervalMs);
    this.timer.unref();
    this.publishHeartbeat();
  }

  heartbeat(): NodeHeartbeat {
    const hb = this.heartbeatHeader();
    hb.vms = this.agents.all().map((vm) => this.agents.status(vm));
    return hb;
  }

  private heartbeatSoon(): void {
    if (this.soon) {
      return;
    }
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.publishHeartbeat();
    }, CHANGE_DEBOUNCE_MS);
    this.soon.unref();
  }

  /**
   * heartbeat() as bytes. A heartbeat lists every VM of the node, and most of a VM's status
   * changes only when its agent connects or says something new: each VM's status is encoded
   * once per change, and only its last_seen (every agent message moves it) every time. The
   * statuses follow the header fields (protobuf fields may come in any order).
   */
  encodeHeartbeat(): Uint8Array {
    const head = toBinary(NodeHeartbeatSchema, this.heartbeatHeader());
    const w = new BinaryWriter();
    for (const vm of this.agents.all()) {
      const key = statusKey(vm);
      let cached = this.encoded.get(vm);
      if (!cached || cached.key.some((v, i) => v !== key[i])) {
        const status = this.agents.status(vm);
        status.lastSeen = undefined;
        cached = { key, bytes: toBinary(VmAgentStatusSchema, status) };
        this.encoded.set(vm, cached);
      }
      w.tag(VMS_FIELD, WireType.LengthDelimited).fork().raw(cached.bytes);
      const seen = vm.client.lastSeen;
      if (seen) {
        const t = timestampFromDate(seen);
        w.tag(LAST_SEEN_FIELD, WireType.LengthDelimited).fork();
        if (t.seconds !== 0n) {
          w.tag(1, WireType.Varint).int64(t.seconds);
        }
        if (t.nanos !== 0) {
          w.tag(2, WireType.Varint).int32(t.nanos);
        }
        w.join();
      }
      w.join();
    }
    const vms = w.finish();
    const out = new Uint8Array(head.length + vms.length);
    out.set(head);
    out.set(vms, head.length);
    return out;
  }

  /**
   * The next state_seq (PROTOCOL.md §9): microseconds, the wall clock at start plus a monotonic
   * clock since (a clock stepped back while running changes nothing), each larger than the last.
   */
  private nextStateSeq(): bigint {
    const now = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000));
    this.lastStateSeq = now > this.lastStateSeq ? now : this.lastStateSeq + 1n;
    return this.lastStateSeq;
  }

  private heartbeatHeader() {
    return create(NodeHeartbeatSchema, {
      nodeId: this.config.nodeId,
      hostname: hostname(),
      daemonVersion: DAEMON_VERSION,
      startedAt: timestampFromDate(this.startedAt),
      timestamp: timestampNow(),
      fileChunkMaxBytes: this.relay.fileChunkMaxBytes,
      natsReconnects: this.nats.reconnects,
      stateSeq: this.nextStateSeq(),
    });
  }

  private publishHeartbeat(): void {
    this.publish(subjects.heartbeat(this.config.nodeId), this.encodeHeartbeat());
  }

  private publishEvent({ vm, kind, reason }: AgentEventNotice): void {
    const event = create(AgentEventSchema, {
      nodeId: this.config.nodeId,
      vmId: vm.vmId,
      kind,
      timestamp: timestampNow(),
      status: this.agents.status(vm),
      reason,
      stateSeq: this.nextStateSeq(),
    });
    this.publish(
      subjects.event(this.config.nodeId, vm.vmId, kind),
      toBinary(AgentEventSchema, event),
    );
  }

  private publishTelemetry(vm: VmAgent, report: TelemetryReport): void {
    const message = create(VmTelemetrySchema, {
      nodeId: this.config.nodeId,
      vmId: vm.vmId,
      timestamp: timestampNow(),
      report,
    });
    this.publish(
      subjects.telemetry(this.config.nodeId, vm.vmId),
      toBinary(VmTelemetrySchema, message),
    );
  }

  /** A streamed execution's output, relayed as the agent sent it (PROTOCOL.md §9). */
  private publishExecOutput(event: ExecOutputEvent): void {
    if (!isSubjectToken(event.executionId)) {
      this.log.warn(`dropped output of an execution id that is no subject token`);
      return;
    }
    this.publish(
      subjects.execOutput(this.config.nodeId, event.executionId),
      toBinary(ExecOutputEventSchema, event),
    );
  }

  private publish(subject: string, data: Uint8Array): void {
    try {
      this.nats.connection.publish(subject, data);
    } catch (err) {
      this.log.warn(`could not publish ${subject}: ${(err as Error).message}`);
    }
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
    clearTimeout(this.soon);
  }
}
