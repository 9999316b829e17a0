import { bool, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { formatBytes, formatDuration } from '../output/progress.js';
import { jsonText } from '../output/stream.js';
import { formatDetails, type Cell } from '../output/table.js';
import { outputFormat, printList, printOne, renderList, type ListSpec } from '../output/listing.js';
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

/** The `vms ls` listing: -o wide adds the hostname. */
export const VM_LIST: ListSpec<VmView> = {
  name: (vm) => vm.id,
  columns: [
    { header: 'ID', cell: (vm) => vm.id },
    { header: 'PROJECT', cell: (vm) => vm.project_id },
    { header: 'NODE', cell: (vm) => vm.node_id },
    { header: 'AGENT', cell: (vm) => vm.agent_state },
    { header: 'VERSION', cell: (vm) => agentVersionOf(vm) },
    { header: 'HOSTNAME', cell: (vm) => vm.hostname, wide: true },
    { header: 'OS', cell: (vm) => osOf(vm), max: 28 },
    { header: 'IPS', cell: (vm) => addressesOf(vm).join(','), max: 40 },
    { header: 'CPU%', cell: (vm) => cpuPercentOf(vm), align: 'right' },
    { header: 'MEM%', cell: (vm) => memPercentOf(vm), align: 'right' },
    { header: 'LABELS', cell: (vm) => labelsList(vm.labels), max: 40 },
  ],
};

/** The `vms ls` table. */
export function vmsTable(vms: readonly VmView[]): string {
  return renderList('table', vms, VM_LIST);
}

/**
 * A label selector as kubectl's -l: `env=prod,role!=db,team,!legacy` (equal, not equal, has,
 * has not); every term must hold.
 */
export function parseSelector(text: string): (labels: Readonly<Record<string, string>>) => boolean {
  const terms = text.split(',').map((t) => t.trim());
  const tests = terms.map((t) => {
    const m = /^(!?)([A-Za-z0-9_./-]+)(?:(!=|==|=)(.*))?$/.exec(t);
    if (!m || (m[1] && m[3])) {
      throw new UsageError(
        `-l must be labels like env=prod,role!=db,team,!legacy (got ${JSON.stringify(t)})`,
      );
    }
    const [, not, key, op, value] = m as unknown as [string, string, string, string?, string?];
    if (op === undefined) {
      return (l: Readonly<Record<string, string>>) => key in l !== (not === '!');
    }
    return op === '!='
      ? (l: Readonly<Record<string, string>>) => l[key] !== value
      : (l: Readonly<Record<string, string>>) => l[key] === value;
  });
  return (labels) => tests.every((t) => t(labels));
}

export const vmsLsCommand: Command = async (ctx, cmd) => {
  outputFormat(cmd);
  const selector = str(cmd, 'selector');
  const matches = selector === undefined ? () => true : parseSelector(selector);
  const { vms } = await ctx.client.json<VmListView>('GET', '/api/vms');
  const project = str(cmd, 'project');
  const shown = vms.filter(
    (v) => (project === undefined || v.project_id === project) && matches(v.labels),
  );
  await printList(ctx.stdout, cmd, shown, VM_LIST);
  return Exit.OK;
};

function labelsList(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

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
  outputFormat(cmd);
  const vm = await ctx.client.json<VmView>('GET', `/api/vms/${seg(cmd.positionals[0]!)}`);
  await printOne(
    ctx.stdout,
    cmd,
    vm,
    (v) => v.id,
    () => vmDetails(vm),
  );
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
