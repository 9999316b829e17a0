import { bool, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output/progress.js';
import { jsonText } from '../output/stream.js';
import { formatDetails, formatTable, type Cell } from '../output/table.js';
import { seg, type Command } from './context.js';
import type { VmLabelsView, VmListView, VmView } from '@lq/api';

/** The VM's addresses without prefix lengths, loopback and link-local left out. */
export function addressesOf(vm: VmView): string[] {
  const ifaces = vm.telemetry?.interfaces.length ? vm.telemetry.interfaces : vm.interfaces;
  const v4 = ifaces.flatMap((i) => i.ipv4).map((a) => a.split('/')[0]!);
  const v6 = ifaces.flatMap((i) => i.ipv6).map((a) => a.split('/')[0]!);
  return [
    ...v4.filter((a) => !a.startsWith('127.')),
    ...v6.filter((a) => a !== '::1' && !a.toLowerCase().startsWith('fe80:')),
  ];
}

export function cpuPercentOf(vm: VmView): string | undefined {
  return vm.telemetry === null ? undefined : vm.telemetry.cpu_percent.toFixed(1);
}

export function memPercentOf(vm: VmView): string | undefined {
  const m = vm.telemetry?.memory;
  return m && m.total_bytes > 0 ? ((m.used_bytes / m.total_bytes) * 100).toFixed(1) : undefined;
}

function osOf(vm: VmView): string | undefined {
  return vm.os?.pretty_name || [vm.os?.name, vm.os?.version].filter(Boolean).join(' ') || undefined;
}

/** `0.1.0 linux-amd64 (outdated)`: the agent's version, build target and whether it is old. */
export function agentVersionOf(vm: VmView): string | undefined {
  const text = [vm.agent_version, vm.agent_target].filter(Boolean).join(' ');
  return text ? `${text}${vm.agent_outdated ? ' (outdated)' : ''}` : undefined;
}

/** The `vms ls` table. */
export function vmsTable(vms: readonly VmView[]): string {
  return formatTable(
    [
      { header: 'ID' },
      { header: 'PROJECT' },
      { header: 'NODE' },
      { header: 'AGENT' },
      { header: 'VERSION' },
      { header: 'OS', max: 28 },
      { header: 'IPS', max: 40 },
      { header: 'CPU%', align: 'right' },
      { header: 'MEM%', align: 'right' },
    ],
    vms.map((vm): Cell[] => [
      vm.id,
      vm.project_id,
      vm.node_id,
      vm.agent_state,
      agentVersionOf(vm),
      osOf(vm),
      addressesOf(vm).join(','),
      cpuPercentOf(vm),
      memPercentOf(vm),
    ]),
  );
}

export const vmsLsCommand: Command = async (ctx, cmd) => {
  const { vms } = await ctx.client.json<VmListView>('GET', '/api/vms');
  const project = str(cmd, 'project');
  const shown = project === undefined ? vms : vms.filter((v) => v.project_id === project);
  ctx.stdout.write(ctx.json ? jsonText(shown) : vmsTable(shown));
  return Exit.OK;
};

function labelsText(labels: Record<string, string>): string {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(', ');
}

/** The `vm show` details. */
export function vmDetails(vm: VmView): string {
  const t = vm.telemetry;
  const mem = t?.memory;
  const pairs: Array<[string, Cell]> = [
    ['id', vm.id],
    ['project', vm.project_id],
    ['node', vm.node_id],
    [
      'agent',
      [vm.agent_state, vm.agent_version && `version ${vm.agent_version}`]
        .filter(Boolean)
        .join(', '),
    ],
    ['agent build', agentVersionOf(vm)],
    [
      'last update',
      vm.agent_last_update
        ? [
            `${vm.agent_last_update.from_version} -> ${vm.agent_last_update.to_version}`,
            vm.agent_last_update.result,
            vm.agent_last_update.reason,
          ]
            .filter(Boolean)
            .join(', ')
        : undefined,
    ],
    ['last seen', vm.last_seen],
    ['hostname', vm.hostname],
    ['os', osOf(vm)],
    ['kernel', [vm.os?.kernel_release, vm.os?.arch].filter(Boolean).join(' ')],
    ['labels', labelsText(vm.labels)],
    ['capabilities', vm.capabilities.join(', ')],
  ];
  for (const i of vm.telemetry?.interfaces.length ? vm.telemetry.interfaces : vm.interfaces) {
    pairs.push([
      `interface ${i.name || '?'}`,
      [i.mac, ...i.ipv4, ...i.ipv6].filter(Boolean).join(' '),
    ]);
  }
  if (t) {
    pairs.push(
      [
        'cpu',
        `${cpuPercentOf(vm)}% of ${t.cpu_count || '?'} CPUs, load ${[t.load1, t.load5, t.load15].map((l) => l.toFixed(2)).join(' ')}`,
      ],
      [
        'memory',
        mem?.total_bytes
          ? `${formatBytes(mem.used_bytes)} of ${formatBytes(mem.total_bytes)} used (${memPercentOf(vm)}%)`
          : undefined,
      ],
      ['processes', t.process_count],
      ['uptime', formatDuration(t.uptime_seconds * 1000)],
      ['telemetry at', vm.telemetry_at],
    );
  }
  return formatDetails(pairs);
}

export const vmShowCommand: Command = async (ctx, cmd) => {
  const vm = await ctx.client.json<VmView>('GET', `/api/vms/${seg(cmd.positionals[0]!)}`);
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
    : (await ctx.client.json<VmView>('GET', `/api/vms/${seg(id)}`)).labels;
  const labels = applyLabelArgs(current, args, bool(cmd, 'replace'));
  const res = await ctx.client.json<VmLabelsView>('PUT', `/api/vms/${seg(id)}/labels`, {
    json: { labels },
  });
  ctx.stdout.write(ctx.json ? jsonText(res) : `${res.vm_id}: ${labelsText(res.labels)}\n`);
  return Exit.OK;
};
