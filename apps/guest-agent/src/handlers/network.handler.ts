import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import {
  ErrorCode,
  InterfaceNetworkConfigSchema,
  NetworkAddressing,
  NetworkApplyState,
  NetworkApplyStatusSchema,
  NetworkBackend,
  NetworkConfigureResponseSchema,
  NetworkConfirmResponseSchema,
  NetworkGetResponseSchema,
  type AgentPayload,
  type InterfaceNetworkConfig,
  type NetworkApplyStatus,
} from '@lq/proto';
import type { AgentConfig } from '../config.js';
import { AgentOpError } from '../errors.js';
import type { BackendKind } from '../network/backend.js';
import { NetworkConfigError, validateNetworkInterfaces, type NetIface } from '@lq/proto';
import type { ApplyStatus, NetworkApplier } from '../network/network-applier.js';
import { interfaceFilter, listInterfaces } from '../telemetry/system-info.js';
import type { HandlerContext, OperationHandler, RequestOf } from './handler.js';

const BACKENDS: Record<BackendKind, NetworkBackend> = {
  netplan: NetworkBackend.NETPLAN,
  networkmanager: NetworkBackend.NETWORK_MANAGER,
  networkd: NetworkBackend.SYSTEMD_NETWORKD,
  ifupdown: NetworkBackend.IFUPDOWN,
};

const STATES: Record<ApplyStatus['state'], NetworkApplyState> = {
  pending: NetworkApplyState.PENDING,
  confirmed: NetworkApplyState.CONFIRMED,
  rolled_back: NetworkApplyState.ROLLED_BACK,
};

function toProto(i: NetIface): InterfaceNetworkConfig {
  return create(InterfaceNetworkConfigSchema, {
    name: i.name,
    addressing: i.dhcp ? NetworkAddressing.DHCP : NetworkAddressing.STATIC,
    addresses: i.addresses,
    gateway: i.gateway,
    dnsServers: i.dns,
    searchDomains: i.search,
    mtu: i.mtu,
  });
}

function statusOf(s: ApplyStatus): NetworkApplyStatus {
  return create(NetworkApplyStatusSchema, {
    applyId: s.applyId,
    state: STATES[s.state],
    confirmDeadline: timestampFromMs(s.deadline),
    reason: s.reason,
    changedAt: timestampFromMs(s.changedAt),
    interfaces: s.interfaces,
  });
}

/** network.get: the stack's configuration as its files say, and the live addresses. */
export class NetworkGetHandler implements OperationHandler<'networkGet'> {
  readonly requestCase = 'networkGet' as const;
  private readonly excluded: (name: string) => boolean;

  constructor(
    config: AgentConfig,
    private readonly applier: NetworkApplier,
  ) {
    this.excluded = interfaceFilter(config.network.exclude_interfaces);
  }

  async handle(): Promise<AgentPayload> {
    const r = await this.applier.get();
    return {
      case: 'networkGetResponse',
      value: create(NetworkGetResponseSchema, {
        backend: r.backend ? BACKENDS[r.backend] : NetworkBackend.UNSPECIFIED,
        interfaces: r.interfaces.map(toProto),
        live: listInterfaces(this.excluded),
        configFiles: r.files,
        lastApply: r.last ? statusOf(r.last) : undefined,
      }),
    };
  }
}

/** network.configure: validates, renders, and (unless dry_run) applies until confirmed. */
export class NetworkConfigureHandler implements OperationHandler<'networkConfigure'> {
  readonly requestCase = 'networkConfigure' as const;

  constructor(private readonly applier: NetworkApplier) {}

  async handle(request: RequestOf<'networkConfigure'>, ctx: HandlerContext): Promise<AgentPayload> {
    let desired: NetIface[];
    try {
      desired = validateNetworkInterfaces(
        request.interfaces.map((i) => ({
          name: i.name,
          addressing:
            i.addressing === NetworkAddressing.DHCP
              ? 'dhcp'
              : i.addressing === NetworkAddressing.STATIC
                ? 'static'
                : 'unspecified',
          addresses: i.addresses,
          gateway: i.gateway,
          dnsServers: i.dnsServers,
          searchDomains: i.searchDomains,
          mtu: i.mtu,
        })),
      );
    } catch (err) {
      if (err instanceof NetworkConfigError) {
        throw new AgentOpError(ErrorCode.INVALID_REQUEST, err.message);
      }
      throw err;
    }
    const r = await this.applier.configure(desired, request.confirmTimeoutMs, request.dryRun);
    if (!r.dryRun) {
      ctx.log.info('network.configure applied', { applyId: r.applyId, backend: r.backend });
    }
    return {
      case: 'networkConfigureResponse',
      value: create(NetworkConfigureResponseSchema, {
        applyId: r.applyId,
        backend: BACKENDS[r.backend],
        files: r.files,
        previous: r.previous.map(toProto),
        confirmDeadline: r.deadline ? timestampFromMs(r.deadline) : undefined,
        dryRun: r.dryRun,
      }),
    };
  }
}

/** network.confirm: keeps a pending apply. */
export class NetworkConfirmHandler implements OperationHandler<'networkConfirm'> {
  readonly requestCase = 'networkConfirm' as const;

  constructor(private readonly applier: NetworkApplier) {}

  async handle(request: RequestOf<'networkConfirm'>): Promise<AgentPayload> {
    if (!/^[0-9a-f-]{36}$/.test(request.applyId)) {
      throw new AgentOpError(
        ErrorCode.INVALID_REQUEST,
        'apply_id must be the id network.configure answered',
      );
    }
    const s = await this.applier.confirm(request.applyId);
    return {
      case: 'networkConfirmResponse',
      value: create(NetworkConfirmResponseSchema, { status: statusOf(s) }),
    };
  }
}
