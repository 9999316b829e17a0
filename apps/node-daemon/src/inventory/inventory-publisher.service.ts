import { hostname } from 'node:os';
import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate, timestampNow } from '@bufbuild/protobuf/wkt';
import {
  AgentEventSchema,
  ExecOutputEventSchema,
  NodeHeartbeatSchema,
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
    return create(NodeHeartbeatSchema, {
      nodeId: this.config.nodeId,
      hostname: hostname(),
      daemonVersion: DAEMON_VERSION,
      startedAt: timestampFromDate(this.startedAt),
      timestamp: timestampNow(),
      vms: this.agents.all().map((vm) => this.agents.status(vm)),
      fileChunkMaxBytes: this.relay.fileChunkMaxBytes,
      natsReconnects: this.nats.reconnects,
    });
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

  private publishHeartbeat(): void {
    this.publish(
      subjects.heartbeat(this.config.nodeId),
      toBinary(NodeHeartbeatSchema, this.heartbeat()),
    );
  }

  private publishEvent({ vm, kind, reason }: AgentEventNotice): void {
    const event = create(AgentEventSchema, {
      nodeId: this.config.nodeId,
      vmId: vm.vmId,
      kind,
      timestamp: timestampNow(),
      status: this.agents.status(vm),
      reason,
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
