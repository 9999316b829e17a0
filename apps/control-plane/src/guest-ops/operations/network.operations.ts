import { create } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import {
  InterfaceNetworkConfigSchema,
  NetworkAddressing,
  NetworkApplyState,
  NetworkBackend,
  NetworkConfigError,
  NetworkConfigureRequestSchema,
  inPrefix,
  validateNetworkInterfaces,
  type InterfaceNetworkConfig,
  type NetIface,
  type NetworkApplyStatus,
  type NetworkConfigureResponse,
  type NetworkConfirmResponse,
  type NetworkGetResponse,
} from '@lq/proto';
import type {
  GuestNetworkView,
  InterfaceNetworkView,
  NetworkApplyView,
  NetworkBackendName,
  NetworkConfigureView,
} from '@lq/api';
import { connectBinding } from '../connect-binding.js';
import type { Dispatcher, GuestOperationSpec } from '../guest-operation.js';
import { invalid } from './validate.js';

// Network re-configuration (issue 20 item 4, PROTOCOL.md §11). network.get reads; a PUT is one
// audited operation that sends network.configure, watches network.get until the guest holds the
// new addresses and then sends network.confirm; without them by the deadline it confirms
// nothing and the agent rolls the change back.

/** The longest confirmation window a caller may ask for (the agent caps it too). */
export const NETWORK_CONFIRM_MAX_SECONDS = 3600;
/** How often the PUT asks the agent whether the new addresses are there. */
const POLL_MS = 1000;
/** The agent's default window, when the caller names none. */
const AGENT_DEFAULT_CONFIRM_MS = 60_000;
/** After the deadline, how long to wait for the agent to report its rollback. */
const ROLLBACK_GRACE_MS = 30_000;

const BACKEND_NAMES: Record<NetworkBackend, NetworkBackendName | null> = {
  [NetworkBackend.UNSPECIFIED]: null,
  [NetworkBackend.NETPLAN]: 'netplan',
  [NetworkBackend.NETWORK_MANAGER]: 'networkmanager',
  [NetworkBackend.SYSTEMD_NETWORKD]: 'networkd',
  [NetworkBackend.IFUPDOWN]: 'ifupdown',
};

const STATE_NAMES: Record<NetworkApplyState, NetworkApplyView['state'] | null> = {
  [NetworkApplyState.UNSPECIFIED]: null,
  [NetworkApplyState.PENDING]: 'pending',
  [NetworkApplyState.CONFIRMED]: 'confirmed',
  [NetworkApplyState.ROLLED_BACK]: 'rolled_back',
};

export function interfaceView(i: InterfaceNetworkConfig | NetIface): InterfaceNetworkView {
  if ('dhcp' in i) {
    return {
      name: i.name,
      addressing: i.dhcp ? 'dhcp' : 'static',
      addresses: i.addresses,
      gateway: i.gateway || null,
      dns_servers: i.dns,
      search_domains: i.search,
      mtu: i.mtu || null,
    };
  }
  return {
    name: i.name,
    addressing: i.addressing === NetworkAddressing.DHCP ? 'dhcp' : 'static',
    addresses: i.addresses,
    gateway: i.gateway || null,
    dns_servers: i.dnsServers,
    search_domains: i.searchDomains,
    mtu: i.mtu || null,
  };
}

export function applyView(s: NetworkApplyStatus | undefined): NetworkApplyView | null {
  const state = s ? STATE_NAMES[s.state] : null;
  if (!s || !state) {
    return null;
  }
  return {
    apply_id: s.applyId,
    state,
    confirm_deadline: s.confirmDeadline ? timestampDate(s.confirmDeadline).toISOString() : null,
    reason: s.reason || null,
    changed_at: s.changedAt ? timestampDate(s.changedAt).toISOString() : null,
    interfaces: s.interfaces,
  };
}

export function guestNetworkView(vmId: string, r: NetworkGetResponse): GuestNetworkView {
  return {
    vm_id: vmId,
    backend: BACKEND_NAMES[r.backend] ?? null,
    interfaces: r.interfaces.map(interfaceView),
    live: r.live.map((i) => ({ name: i.name, mac: i.mac, ipv4: i.ipv4, ipv6: i.ipv6 })),
    config_files: r.configFiles,
    last_apply: applyView(r.lastApply),
  };
}

/** The guest's network configuration as its agent reads it (vm.read). */
export const NETWORK_GET: GuestOperationSpec<void, NetworkGetResponse> = {
  name: 'network.get',
  permission: 'vm.read',
  prepare: (_, env) => {
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: {},
      dispatch: (d) => d.send('network.get', { case: 'networkGet', value: {} }, timeoutMs),
      outcome: (r) => ({
        status: 'ok',
        params: { backend: BACKEND_NAMES[r.backend], interfaces: r.interfaces.length },
      }),
    };
  },
  connect: connectBinding({
    method: 'getGuestNetwork',
    input: (req) => ({ vmId: req.vmId, input: undefined }),
    output: (result) => ({ result }),
  }),
};

/** One interface as a caller gives it (REST's snake_case fields, already shaped by the DTO). */
export interface NetworkInterfaceInput {
  name: string;
  addressing: string;
  addresses?: string[];
  gateway?: string | null;
  dns_servers?: string[];
  search_domains?: string[];
  mtu?: number | null;
}

export interface NetworkConfigureInput {
  interfaces: NetworkInterfaceInput[];
  confirmTimeoutSeconds?: number;
  dryRun?: boolean;
  /** Leave the confirmation to POST …/network/confirm. */
  manualConfirm?: boolean;
}

export interface NetworkConfigureResult {
  outcome: NetworkConfigureView['outcome'];
  applied: NetworkConfigureResponse;
  desired: NetIface[];
  status: NetworkApplyStatus | undefined;
  /** The new addresses were seen on the guest. */
  seen: boolean;
}

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

/** Whether the guest holds what `desired` asks for (a DHCP interface: any IPv4 address). */
export function addressesReported(desired: readonly NetIface[], r: NetworkGetResponse): boolean {
  return desired.every((d) => {
    const live = r.live.find((l) => l.name === d.name);
    if (!live) {
      return false;
    }
    const held = [...live.ipv4, ...live.ipv6].map((a) => a.toLowerCase());
    if (d.dhcp) {
      return live.ipv4.length > 0;
    }
    return d.addresses.every((a) => {
      const address = a.split('/')[0]!;
      return held.some((h) => h.split('/')[0] === address && inPrefix(address, h));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function watchAndConfirm(
  d: Dispatcher,
  desired: NetIface[],
  applied: NetworkConfigureResponse,
  requestMs: number,
): Promise<NetworkConfigureResult> {
  const deadline = applied.confirmDeadline
    ? timestampDate(applied.confirmDeadline).getTime()
    : Date.now() + AGENT_DEFAULT_CONFIRM_MS;
  // Confirm with a margin before the agent's deadline: the confirmation has to get there.
  const confirmBy = deadline - Math.min(5000, (deadline - Date.now()) / 4);
  let last: NetworkApplyStatus | undefined;
  while (Date.now() < confirmBy) {
    const r = await d
      .send('network.get', { case: 'networkGet', value: {} }, requestMs)
      .catch(() => undefined);
    last = r?.lastApply;
    if (r && last?.applyId === applied.applyId && last.state !== NetworkApplyState.PENDING) {
      break;
    }
    if (r && addressesReported(desired, r)) {
      const confirmed = await d.send(
        'network.confirm',
        { case: 'networkConfirm', value: { applyId: applied.applyId } },
        requestMs,
      );
      const state = confirmed.status?.state;
      return {
        outcome: state === NetworkApplyState.CONFIRMED ? 'confirmed' : 'rolled_back',
        applied,
        desired,
        status: confirmed.status,
        seen: true,
      };
    }
    await sleep(POLL_MS);
  }
  // Not seen in time: no confirmation; wait for the agent to say it rolled back.
  const until = deadline + ROLLBACK_GRACE_MS;
  while (Date.now() < until) {
    const r = await d
      .send('network.get', { case: 'networkGet', value: {} }, requestMs)
      .catch(() => undefined);
    if (r?.lastApply?.applyId === applied.applyId) {
      last = r.lastApply;
      if (last.state !== NetworkApplyState.PENDING) {
        break;
      }
    }
    await sleep(POLL_MS);
  }
  return { outcome: 'rolled_back', applied, desired, status: last, seen: false };
}

/** Checks the interfaces as the agent will (400 naming the field; nothing sent). */
export function checkNetworkInterfaces(interfaces: readonly NetworkInterfaceInput[]): NetIface[] {
  if (!Array.isArray(interfaces)) {
    throw invalid('interfaces', 'must be a list');
  }
  try {
    return validateNetworkInterfaces(
      interfaces.map((i: NetworkInterfaceInput) => ({
        name: String(i.name ?? ''),
        addressing: String(i.addressing ?? ''),
        addresses: i.addresses ?? [],
        gateway: i.gateway ?? '',
        dnsServers: i.dns_servers ?? [],
        searchDomains: i.search_domains ?? [],
        mtu: i.mtu ?? 0,
      })),
    );
  } catch (err) {
    if (err instanceof NetworkConfigError) {
      throw invalid('interfaces:', err.message);
    }
    throw err;
  }
}

/**
 * Applies a network configuration (guest.network.configure): the agent writes the native files
 * and applies them; this confirms once the guest reports the new addresses, or lets the agent
 * roll back. The outcome row holds the previous and the new configuration.
 */
export const NETWORK_CONFIGURE: GuestOperationSpec<NetworkConfigureInput, NetworkConfigureResult> =
  {
    name: 'network.configure',
    permission: 'guest.network.configure',
    prepare: (input, env) => {
      const desired = checkNetworkInterfaces(input.interfaces);
      const seconds = input.confirmTimeoutSeconds ?? 0;
      if (!Number.isInteger(seconds) || seconds < 0 || seconds > NETWORK_CONFIRM_MAX_SECONDS) {
        throw invalid(
          'confirm_timeout_seconds',
          `must be a whole number of seconds between 1 and ${NETWORK_CONFIRM_MAX_SECONDS} (0: the agent's default)`,
        );
      }
      if (seconds > 0 && seconds < 5 && !input.manualConfirm && !input.dryRun) {
        throw invalid(
          'confirm_timeout_seconds',
          'must be at least 5 when the control plane confirms (it needs time to see the addresses)',
        );
      }
      // The watch runs under the operation's signed intent, which outlives the longest guest
      // operation (LQ_GUEST_TIMEOUT_MAX_SECONDS) but not a longer window.
      if (!input.manualConfirm && seconds > env.config.guestTimeoutMaxSeconds) {
        throw invalid(
          'confirm_timeout_seconds',
          `must not exceed LQ_GUEST_TIMEOUT_MAX_SECONDS (${env.config.guestTimeoutMaxSeconds}) when the control plane confirms`,
        );
      }
      const requestMs = env.timeoutMs(undefined);
      const applyMs = env.timeoutMs(undefined, Math.min(120, env.config.guestTimeoutMaxSeconds));
      const dryRun = input.dryRun === true;
      return {
        params: {
          interfaces: desired.map(interfaceView),
          confirm_timeout_seconds: seconds || undefined,
          dry_run: dryRun || undefined,
          manual_confirm: input.manualConfirm || undefined,
        },
        dispatch: async (d) => {
          const applied = await d.send(
            'network.configure',
            {
              case: 'networkConfigure',
              value: create(NetworkConfigureRequestSchema, {
                interfaces: desired.map(toProto),
                confirmTimeoutMs: seconds * 1000,
                dryRun,
              }),
            },
            applyMs,
          );
          if (dryRun) {
            return { outcome: 'dry_run', applied, desired, status: undefined, seen: false };
          }
          if (input.manualConfirm) {
            return { outcome: 'pending', applied, desired, status: undefined, seen: false };
          }
          return watchAndConfirm(d, desired, applied, requestMs);
        },
        outcome: (r) => ({
          status: r.outcome,
          params: {
            apply_id: r.applied.applyId || undefined,
            backend: BACKEND_NAMES[r.applied.backend],
            previous: r.applied.previous.map(interfaceView),
            new: r.desired.map(interfaceView),
            files: r.applied.files.map((f) => f.path),
            reason: r.status?.reason || undefined,
          },
        }),
      };
    },
    connect: connectBinding({
      method: 'configureGuestNetwork',
      input: (req) => ({
        vmId: req.vmId,
        input: {
          interfaces: req.interfaces.map((i) => ({
            ...interfaceView(i),
            addressing:
              i.addressing === NetworkAddressing.DHCP
                ? 'dhcp'
                : i.addressing === NetworkAddressing.STATIC
                  ? 'static'
                  : 'unspecified',
          })),
          confirmTimeoutSeconds: req.confirmTimeoutSeconds,
          dryRun: req.dryRun,
          manualConfirm: req.manualConfirm,
        },
      }),
      output: (r) => ({ outcome: r.outcome, applied: r.applied, status: r.status }),
    }),
  };

/** The REST answer of a PUT. */
export function networkConfigureView(
  vmId: string,
  r: NetworkConfigureResult,
): NetworkConfigureView {
  return {
    vm_id: vmId,
    outcome: r.outcome,
    apply_id: r.applied.applyId || null,
    backend: BACKEND_NAMES[r.applied.backend] ?? null,
    files: r.applied.files.map((f) => ({ path: f.path, content: f.content })),
    previous: r.applied.previous.map(interfaceView),
    interfaces: r.desired.map(interfaceView),
    confirm_deadline: r.applied.confirmDeadline
      ? timestampDate(r.applied.confirmDeadline).toISOString()
      : null,
    status: applyView(r.status),
  };
}

const APPLY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Confirms a pending apply (a PUT with manual_confirm leaves it to the caller). */
export const NETWORK_CONFIRM: GuestOperationSpec<{ applyId: string }, NetworkConfirmResponse> = {
  name: 'network.confirm',
  permission: 'guest.network.configure',
  prepare: ({ applyId }, env) => {
    if (typeof applyId !== 'string' || !APPLY_ID.test(applyId)) {
      throw invalid('apply_id', 'must be the apply_id a network PUT answered');
    }
    const timeoutMs = env.timeoutMs(undefined);
    return {
      params: { apply_id: applyId },
      dispatch: (d) =>
        d.send('network.confirm', { case: 'networkConfirm', value: { applyId } }, timeoutMs),
      outcome: (r) => ({
        status: r.status ? (STATE_NAMES[r.status.state] ?? 'ok') : 'ok',
        params: { reason: r.status?.reason || undefined },
      }),
    };
  },
  connect: connectBinding({
    method: 'confirmGuestNetwork',
    input: (req) => ({ vmId: req.vmId, input: { applyId: req.applyId } }),
    output: (r) => ({ status: r.status }),
  }),
};
