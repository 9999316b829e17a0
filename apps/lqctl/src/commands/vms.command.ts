import { bool, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output/progress.js';
import { jsonText } from '../output/stream.js';
import { formatDetails, formatTable, type Cell } from '../output/table.js';
import { seg, type Command } from './context.js';

interface Iface {
  name?: string;
  mac?: string;
  ipv4?: string[];
  ipv6?: string[];
}

/** A VM as GET /api/vms shows it (proto3 JSON: camelCase, zero values left out). */
export interface VmJson {
  id: string;
  nodeId?: string;
  agentState?: string;
  agentVersion?: string;
  capabilities?: string[];
  hostname?: string;
  os?: {
    name?: string;
    prettyName?: string;
    version?: string;
    kernelRelease?: string;
    arch?: string;
  };
  interfaces?: Iface[];
  lastSeen?: string;
  telemetry?: {
    cpuPercent?: number;
    cpuCount?: number;
    load1?: number;
    load5?: number;
    load15?: number;
    memory?: { totalBytes?: string; usedBytes?: string; availableBytes?: string };
    processCount?: number;
    uptimeSeconds?: number;
    interfaces?: Iface[];
  };
  telemetryAt?: string;
  projectId?: string;
  labels?: Record<string, string>;
}

/** The VM's addresses without prefix lengths, loopback and link-local left out. */
export function addressesOf(vm: VmJson): string[] {
  const ifaces = vm.telemetry?.interfaces?.length ? vm.telemetry.interfaces : (vm.interfaces ?? []);
  const v4 = ifaces.flatMap((i) => i.ipv4 ?? []).map((a) => a.split('/')[0]!);
  const v6 = ifaces.flatMap((i) => i.ipv6 ?? []).map((a) => a.split('/')[0]!);
  return [
    ...v4.filter((a) => !a.startsWith('127.')),
    ...v6.filter((a) => a !== '::1' && !a.toLowerCase().startsWith('fe80:')),
  ];
}

export function cpuPercentOf(vm: VmJson): string | undefined {
  const v = vm.telemetry?.cpuPercent;
  return vm.telemetry === undefined ? undefined : (v ?? 0).toFixed(1);
}

export function memPercentOf(vm: VmJson): string | undefined {
  const m = vm.telemetry?.memory;
  const total = Number(m?.totalBytes ?? 0);
  return total > 0 ? ((Number(m?.usedBytes ?? 0) / total) * 100).toFixed(1) : undefined;
}

function osOf(vm: VmJson): string | undefined {
  return vm.os?.prettyName || [vm.os?.name, vm.os?.version].filter(Boolean).join(' ') || undefined;
}

/** The `vms ls` table. */
export function vmsTable(vms: readonly VmJson[]): string {
  return formatTable(
    [
      { header: 'ID' },
      { header: 'PROJECT' },
      { header: 'NODE' },
      { header: 'AGENT' },
      { header: 'OS', max: 28 },
      { header: 'IPS', max: 40 },
      { header: 'CPU%', align: 'right' },
      { header: 'MEM%', align: 'right' },
    ],
    vms.map((vm): Cell[] => [
      vm.id,
      vm.projectId,
      vm.nodeId,
      vm.agentState,
      osOf(vm),
      addressesOf(vm).join(','),
      cpuPercentOf(vm),
      memPercentOf(vm),
    ]),
  );
}

export const vmsLsCommand: Command = async (ctx, cmd) => {
  const { vms } = await ctx.client.json<{ vms: VmJson[] }>('GET', '/api/vms');
  const project = str(cmd, 'project');
  const shown = project === undefined ? vms : vms.filter((v) => (v.projectId ?? '') === project);
  ctx.stdout.write(ctx.json ? jsonText(shown) : vmsTable(shown));
  return Exit.OK;
};

function labelsText(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

/** The `vm show` details. */
export function vmDetails(vm: VmJson): string {
  const t = vm.telemetry;
  const mem = t?.memory;
  const pairs: Array<[string, Cell]> = [
    ['id', vm.id],
    ['project', vm.projectId],
    ['node', vm.nodeId],
    [
      'agent',
      [vm.agentState, vm.agentVersion && `version ${vm.agentVersion}`].filter(Boolean).join(', '),
    ],
    ['last seen', vm.lastSeen],
    ['hostname', vm.hostname],
    ['os', osOf(vm)],
    ['kernel', [vm.os?.kernelRelease, vm.os?.arch].filter(Boolean).join(' ')],
    ['labels', labelsText(vm.labels)],
    ['capabilities', vm.capabilities?.join(', ')],
  ];
  for (const i of vm.telemetry?.interfaces?.length
    ? vm.telemetry.interfaces
    : (vm.interfaces ?? [])) {
    pairs.push([
      `interface ${i.name ?? '?'}`,
      [i.mac, ...(i.ipv4 ?? []), ...(i.ipv6 ?? [])].filter(Boolean).join(' '),
    ]);
  }
  if (t) {
    pairs.push(
      [
        'cpu',
        `${cpuPercentOf(vm)}% of ${t.cpuCount ?? '?'} CPUs, load ${[t.load1, t.load5, t.load15].map((l) => (l ?? 0).toFixed(2)).join(' ')}`,
      ],
      [
        'memory',
        mem?.totalBytes
          ? `${formatBytes(Number(mem.usedBytes ?? 0))} of ${formatBytes(Number(mem.totalBytes))} used (${memPercentOf(vm)}%)`
          : undefined,
      ],
      ['processes', t.processCount],
      [
        'uptime',
        t.uptimeSeconds === undefined ? undefined : formatDuration(t.uptimeSeconds * 1000),
      ],
      ['telemetry at', vm.telemetryAt],
    );
  }
  return formatDetails(pairs);
}

export const vmShowCommand: Command = async (ctx, cmd) => {
  const vm = await ctx.client.json<VmJson>('GET', `/api/vms/${seg(cmd.positionals[0]!)}`);
  ctx.stdout.write(ctx.json ? jsonText(vm) : vmDetails(vm));
  return Exit.OK;
};

/**
 * The labels after `key=value` (set) and `key-` (remove) arguments, starting from the VM's
 * current labels, or from none with --replace.
 */
export function applyLabelArgs(
  current: Readonly<Record<string, string>>,
  args: readonly string[],
  replace: boolean,
): Record<string, string> {
  const next: Record<string, string> = replace ? {} : { ...current };
  for (const a of args) {
    if (/^[^=]+-$/.test(a)) {
      delete next[a.slice(0, -1)];
      continue;
    }
    const eq = a.indexOf('=');
    if (eq <= 0) {
      throw new UsageError(`labels are key=value to set or key- to remove (got ${a})`);
    }
    next[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return next;
}

export const vmLabelCommand: Command = async (ctx, cmd: ParsedCommand) => {
  const [id, ...args] = cmd.positionals as [string, ...string[]];
  if (args.length === 0 && !bool(cmd, 'replace')) {
    throw new UsageError('vm label needs key=value (or key-) arguments');
  }
  const current = bool(cmd, 'replace')
    ? {}
    : ((await ctx.client.json<VmJson>('GET', `/api/vms/${seg(id)}`)).labels ?? {});
  const labels = applyLabelArgs(current, args, bool(cmd, 'replace'));
  const res = await ctx.client.json<{ vm_id: string; labels: Record<string, string> }>(
    'PUT',
    `/api/vms/${seg(id)}/labels`,
    { json: { labels } },
  );
  ctx.stdout.write(ctx.json ? jsonText(res) : `${res.vm_id}: ${labelsText(res.labels)}\n`);
  return Exit.OK;
};
