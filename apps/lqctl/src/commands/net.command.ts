import type {
  GuestNetworkView,
  InterfaceNetworkView,
  NetworkApplyView,
  NetworkConfigureBody,
  NetworkConfigureView,
} from '@lq/api';
import { bool, list, parseTimeoutSeconds, str } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { jsonText } from '../output/stream.js';
import { seg, type Command } from './context.js';

function ifaceLine(i: InterfaceNetworkView): string {
  const parts = [
    i.addressing === 'dhcp' ? 'dhcp' : i.addresses.join(' ') || '(no address)',
    i.gateway ? `via ${i.gateway}` : '',
    i.dns_servers.length ? `dns ${i.dns_servers.join(',')}` : '',
    i.search_domains.length ? `search ${i.search_domains.join(',')}` : '',
    i.mtu ? `mtu ${i.mtu}` : '',
  ];
  return `${i.name}: ${parts.filter(Boolean).join(' ')}`;
}

function applyLine(a: NetworkApplyView): string {
  return `last apply ${a.apply_id}: ${a.state}${a.reason ? ` (${a.reason})` : ''}${
    a.state === 'pending' && a.confirm_deadline ? `, rolls back at ${a.confirm_deadline}` : ''
  }`;
}

export function describeNetwork(r: GuestNetworkView): string {
  const lines = [
    `${r.vm_id}: ${r.backend ?? 'no network stack the agent can configure'}${
      r.config_files.length ? ` (${r.config_files.join(', ')})` : ''
    }`,
    ...r.interfaces.map((i) => `  configured ${ifaceLine(i)}`),
    ...r.live.map(
      (l) => `  live       ${l.name}: ${[...l.ipv4, ...l.ipv6].join(' ') || '(no address)'}`,
    ),
  ];
  if (r.last_apply) {
    lines.push(`  ${applyLine(r.last_apply)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function describeConfigure(r: NetworkConfigureView): string {
  if (r.outcome === 'dry_run') {
    return `${r.files
      .map((f) => `# ${r.vm_id}: ${r.backend ?? '?'} would write ${f.path}\n${f.content}`)
      .join('\n')}`;
  }
  const before = r.previous.map(ifaceLine).join('; ') || '(not configured)';
  const after = r.interfaces.map(ifaceLine).join('; ');
  const head = `${r.vm_id}: ${before} -> ${after} (${r.backend ?? '?'}): ${r.outcome}`;
  if (r.outcome === 'pending') {
    return `${head}\n  confirm with: lqctl net confirm ${r.vm_id} ${r.apply_id} (before ${r.confirm_deadline}, or the guest rolls back)\n`;
  }
  return `${head}${r.status?.reason ? ` (${r.status.reason})` : ''}\n`;
}

/** `lqctl net show VM`: the guest network configuration as its agent reads it. */
export const netShowCommand: Command = async (ctx, cmd) => {
  const vm = cmd.positionals[0]!;
  const r = await ctx.client.json<GuestNetworkView>('GET', `/api/vms/${seg(vm)}/network`);
  ctx.stdout.write(ctx.json ? jsonText(r) : describeNetwork(r));
  return Exit.OK;
};

/** The PUT body of `lqctl net set` (usage errors name the flag). */
export function netSetBody(cmd: Parameters<Command>[1]): NetworkConfigureBody {
  const name = str(cmd, 'iface');
  if (!name) {
    throw new UsageError('net set needs --iface NAME (e.g. --iface eth0)');
  }
  const dhcp = bool(cmd, 'dhcp');
  const addresses = list(cmd, 'address');
  if (dhcp === addresses.length > 0) {
    throw new UsageError('give either --dhcp or one or more --address CIDR (e.g. 10.0.2.50/24)');
  }
  const mtuText = str(cmd, 'mtu');
  const mtu = mtuText === undefined ? undefined : Number(mtuText);
  if (mtu !== undefined && (!Number.isInteger(mtu) || mtu < 576 || mtu > 9000)) {
    throw new UsageError(`--mtu must be a whole number between 576 and 9000 (got ${mtuText})`);
  }
  const body: NetworkConfigureBody = {
    interfaces: [
      {
        name,
        addressing: dhcp ? 'dhcp' : 'static',
        addresses,
        gateway: str(cmd, 'gateway') ?? null,
        dns_servers: list(cmd, 'dns'),
        search_domains: list(cmd, 'search'),
        mtu: mtu ?? null,
      },
    ],
  };
  const timeout = str(cmd, 'confirm-timeout');
  if (timeout !== undefined) {
    body.confirm_timeout_seconds = parseTimeoutSeconds(timeout);
  }
  if (bool(cmd, 'dry-run')) {
    body.dry_run = true;
  }
  if (bool(cmd, 'manual-confirm')) {
    body.manual_confirm = true;
  }
  return body;
}

/**
 * `lqctl net set VM --iface I (--dhcp | --address CIDR…) […]` applies (PUT
 * /api/vms/:id/network); exits 0 when confirmed, pending or a dry run, 1 when rolled back.
 */
export const netSetCommand: Command = async (ctx, cmd) => {
  const vm = cmd.positionals[0]!;
  const body = netSetBody(cmd);
  const r = await ctx.client.json<NetworkConfigureView>('PUT', `/api/vms/${seg(vm)}/network`, {
    json: body,
  });
  ctx.stdout.write(ctx.json ? jsonText(r) : describeConfigure(r));
  return r.outcome === 'rolled_back' ? Exit.FAILED : Exit.OK;
};

/** `lqctl net confirm VM APPLY_ID`: keeps a pending apply (after net set --manual-confirm). */
export const netConfirmCommand: Command = async (ctx, cmd) => {
  const [vm, applyId] = cmd.positionals as [string, string];
  const r = await ctx.client.json<NetworkApplyView | null>(
    'POST',
    `/api/vms/${seg(vm)}/network/confirm`,
    { json: { apply_id: applyId } },
  );
  ctx.stdout.write(ctx.json ? jsonText(r) : `${vm}: ${r ? applyLine(r) : 'no status'}\n`);
  return r?.state === 'confirmed' ? Exit.OK : Exit.FAILED;
};
