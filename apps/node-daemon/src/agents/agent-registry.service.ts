import { EventEmitter } from 'node:events';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  AgentState,
  VmAgentStatusSchema,
  type AgentInfo,
  type ExecOutputEvent,
  type TelemetryReport,
  type VmAgentStatus,
} from '@lq/proto';
import { AgentClient, type AgentClientState } from '@lq/host';
import { NODE_DAEMON_CONFIG, type NodeDaemonConfig } from '../config/env.schema.js';

export interface VmAgent {
  vmId: string;
  /** The libvirt domain name, '' for the flat layout. */
  name: string;
  channelPath: string;
  client: AgentClient;
}

export type AgentEventKind = 'connected' | 'ready' | 'disconnected';

export interface AgentEventNotice {
  vm: VmAgent;
  kind: AgentEventKind;
  reason: string;
}

const STATE_OF: Record<AgentClientState, AgentState> = {
  disconnected: AgentState.DISCONNECTED,
  connecting: AgentState.DISCONNECTED,
  closed: AgentState.DISCONNECTED,
  syncing: AgentState.CONNECTING,
  ready: AgentState.READY,
};

/**
 * One AgentClient per VM channel: it connects, syncs, reconnects with backoff when the agent or
 * the VM restarts, and the registry turns its state changes into events.
 *
 * Events: 'agent-event' (AgentEventNotice), 'telemetry' (vm, TelemetryReport), 'exec-output'
 * (vm, ExecOutputEvent), 'changed' ().
 */
@Injectable()
export class AgentRegistryService extends EventEmitter implements OnApplicationShutdown {
  private readonly log = new Logger('agents');
  private readonly vms = new Map<string, VmAgent>();

  constructor(@Inject(NODE_DAEMON_CONFIG) private readonly config: NodeDaemonConfig) {
    super();
  }

  get(vmId: string): VmAgent | undefined {
    return this.vms.get(vmId);
  }

  all(): VmAgent[] {
    return [...this.vms.values()];
  }

  add(vmId: string, channelPath: string, name = ''): void {
    this.remove(vmId, 'channel replaced');
    const client = new AgentClient({
      path: channelPath,
      hostId: `node-daemon/${this.config.nodeId}`,
      reconnect: true,
      reconnectInitialMs: 100,
      reconnectMaxMs: this.config.agentReconnectMaxMs,
      syncTimeoutMs: this.config.agentSyncTimeoutMs,
      requestTimeoutMs: this.config.defaultTimeoutMs,
      keepaliveMs: this.config.agentKeepaliveMs,
    });
    const vm: VmAgent = { vmId, name, channelPath, client };
    this.vms.set(vmId, vm);
    let previous: AgentClientState = client.state;
    client.on('state', (state: AgentClientState) => {
      const was = previous;
      previous = state;
      if (state === 'syncing' && (was === 'connecting' || was === 'disconnected')) {
        this.notify(vm, 'connected', 'channel connected');
      } else if (
        (state === 'disconnected' || state === 'closed') &&
        was !== 'connecting' &&
        was !== 'disconnected'
      ) {
        this.notify(vm, 'disconnected', state === 'closed' ? 'channel removed' : 'connection lost');
      } else {
        this.emit('changed');
      }
    });
    client.on('ready', (_info: AgentInfo) => this.notify(vm, 'ready', 'agent announced itself'));
    client.on('telemetry', (report: TelemetryReport) => this.emit('telemetry', vm, report));
    client.on('exec-output', (event: ExecOutputEvent) => this.emit('exec-output', vm, event));
    client.start();
    this.emit('changed');
  }

  remove(vmId: string, reason: string): void {
    const vm = this.vms.get(vmId);
    if (!vm) {
      return;
    }
    this.vms.delete(vmId);
    vm.client.close();
    this.log.log(`VM ${vmId} removed: ${reason}`);
    this.emit('changed');
  }

  status(vm: VmAgent): VmAgentStatus {
    const c = vm.client;
    return create(VmAgentStatusSchema, {
      vmId: vm.vmId,
      name: vm.name,
      channelPath: vm.channelPath,
      state: STATE_OF[c.state],
      agentVersion: c.agentVersion,
      protocolVersion: c.protocolVersion,
      capabilities: c.capabilities,
      limits: c.limits,
      info: c.info,
      connectedSince: c.connectedSince ? timestampFromDate(c.connectedSince) : undefined,
      lastSeen: c.lastSeen ? timestampFromDate(c.lastSeen) : undefined,
    });
  }

  private notify(vm: VmAgent, kind: AgentEventKind, reason: string): void {
    this.log.log(`VM ${vm.vmId}: agent ${kind} (${reason})`);
    this.emit('agent-event', { vm, kind, reason } satisfies AgentEventNotice);
    this.emit('changed');
  }

  onApplicationShutdown(): void {
    for (const vm of this.vms.values()) {
      vm.client.close();
    }
    this.vms.clear();
  }
}
