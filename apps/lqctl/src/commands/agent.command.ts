// `lqctl agent …`: the agent lifecycle (issue 19): releases on offer, the fleet by version, a
// VM's self-update, rollouts, and importing a release folder that `npm run package` built.
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  AgentReleaseListView,
  AgentReleaseView,
  AgentRolloutBody,
  AgentRolloutView,
  AgentUpdateView,
  AgentVersionCountsView,
} from '@lq/api';
import { bool, parseAmount, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { formatCounts } from '../output/progress.js';
import { jsonText } from '../output/stream.js';
import { formatTable } from '../output/table.js';
import { note, seg, type Command } from './context.js';
import { runTarget } from './run.command.js';

const ROLLOUT_POLL_MS = 1000;

function version(cmd: ParsedCommand): string {
  const v = str(cmd, 'version');
  if (!v) {
    throw new UsageError('--version V is required (a release of lqctl agent releases)');
  }
  return v;
}

export function releasesTable(list: AgentReleaseListView): string {
  return formatTable(
    [{ header: 'VERSION' }, { header: 'COMMIT' }, { header: 'TARGETS' }, { header: 'OFFERED' }],
    list.releases.map((r) => [
      `${r.version}${r.version === list.latest ? ' (latest)' : ''}`,
      r.commit,
      r.artifacts.map((a) => `${a.target}${a.verified ? '' : ' (unverified)'}`).join(', '),
      r.updatable ? 'yes' : 'no',
    ]),
  );
}

export const agentReleasesCommand: Command = async (ctx) => {
  const list = await ctx.client.json<AgentReleaseListView>('GET', '/api/agent/releases');
  ctx.stdout.write(ctx.json ? jsonText(list) : releasesTable(list));
  return Exit.OK;
};

export function versionsTable(v: AgentVersionCountsView): string {
  return formatTable(
    [
      { header: 'VERSION' },
      { header: 'TARGET' },
      { header: 'VMS', align: 'right' },
      { header: '' },
    ],
    v.versions.map((r) => [r.version || '?', r.target || '?', r.vms, r.outdated ? 'outdated' : '']),
  );
}

export const agentVersionsCommand: Command = async (ctx) => {
  const v = await ctx.client.json<AgentVersionCountsView>('GET', '/api/agent/versions');
  ctx.stdout.write(ctx.json ? jsonText(v) : versionsTable(v));
  return Exit.OK;
};

/** `lqctl agent update VM --version V`: waits for ready or rolled back; 0 only when ready. */
export const agentUpdateCommand: Command = async (ctx, cmd) => {
  const vm = cmd.positionals[0]!;
  const body = {
    version: version(cmd),
    allow_downgrade: bool(cmd, 'allow-downgrade') || undefined,
  };
  note(ctx, `updating the agent of ${vm} to ${body.version} (sent, verified, restarted…)`);
  const r = await ctx.client.json<AgentUpdateView>('POST', `/api/vms/${seg(vm)}/agent/update`, {
    json: body,
  });
  ctx.stdout.write(
    ctx.json
      ? jsonText(r)
      : `${vm}: ${r.from_version || '?'} -> ${r.to_version}: ${r.state}${r.reason ? ` (${r.reason})` : ''}\n`,
  );
  return r.state === 'ready' ? Exit.OK : Exit.FAILED;
};

export function rolloutBody(cmd: ParsedCommand): AgentRolloutBody {
  const body: AgentRolloutBody = { version: version(cmd), target: runTarget(cmd) };
  const canary = str(cmd, 'canary');
  if (canary !== undefined) {
    if (!/^\d+$/.test(canary)) {
      throw new UsageError('--canary must be a whole number of VMs');
    }
    body.canary = Number(canary);
  }
  const concurrency = str(cmd, 'max-concurrency');
  if (concurrency !== undefined) {
    body.max_concurrency = parseAmount(concurrency, '--max-concurrency', 1);
  }
  const errors = str(cmd, 'max-errors');
  if (errors !== undefined) {
    body.max_errors = parseAmount(errors, '--max-errors', 0);
  }
  if (bool(cmd, 'allow-downgrade')) {
    body.allow_downgrade = true;
  }
  return body;
}

export function rolloutTable(r: AgentRolloutView): string {
  return formatTable(
    [
      { header: 'VM' },
      { header: 'STEP' },
      { header: 'FROM' },
      { header: 'TO' },
      { header: 'ERROR', max: 70 },
    ],
    r.vms.map((v) => [
      `${v.vm_id}${v.canary ? ' (canary)' : ''}`,
      v.state,
      v.from_version,
      v.to_version,
      v.error,
    ]),
  );
}

/** `lqctl agent rollout TARGET --version V`: starts it, shows progress, then every VM's step. */
export const agentRolloutCommand: Command = async (ctx, cmd) => {
  const body = rolloutBody(cmd);
  let r = await ctx.client.json<AgentRolloutView>('POST', '/api/agent/rollouts', { json: body });
  note(
    ctx,
    `rollout ${r.id}: ${r.vms.length} VMs to ${r.version}, ${r.canary} canary first, then ${r.max_concurrency} at a time, stopping after ${r.max_errors + 1} errors`,
  );
  let last = '';
  while (r.status === 'running') {
    await sleep(ROLLOUT_POLL_MS);
    r = await ctx.client.json<AgentRolloutView>('GET', `/api/agent/rollouts/${seg(r.id)}`);
    const line = formatCounts(r.summary);
    if (line !== last) {
      note(ctx, `rollout ${r.id}: ${line}`);
      last = line;
    }
  }
  ctx.stdout.write(ctx.json ? jsonText(r) : rolloutTable(r));
  note(ctx, `rollout ${r.id}: ${r.status}, ${r.errors} errors`);
  return r.status === 'succeeded' ? Exit.OK : Exit.FAILED;
};

/** The files of a release folder to upload: its SHA256SUMS entries and its three metadata files. */
export function releaseFiles(dir: string): { version: string; files: string[] } {
  const need = ['release.json', 'SHA256SUMS', 'release-manifest.json'];
  for (const f of need) {
    if (!existsSync(join(dir, f))) {
      throw new UsageError(
        `${dir} has no ${f}: a release folder of npm run package, signed (release-manifest.json)`,
      );
    }
  }
  const meta = JSON.parse(readFileSync(join(dir, 'release.json'), 'utf8')) as { version?: unknown };
  if (typeof meta.version !== 'string') {
    throw new UsageError(`${join(dir, 'release.json')} names no version`);
  }
  const listed = readFileSync(join(dir, 'SHA256SUMS'), 'utf8')
    .split('\n')
    .map((l) => /^[0-9a-f]{64} [ *](.+)$/.exec(l)?.[1])
    .filter((f): f is string => f !== undefined && basename(f) === f);
  return { version: meta.version, files: [...listed, ...need] };
}

/** `lqctl agent release import DIR`: uploads a release folder, then publishes it. */
export const agentReleaseCommand: Command = async (ctx, cmd) => {
  const [action, dir] = cmd.positionals;
  if (action !== 'import') {
    throw new UsageError(`lqctl agent release ${action ?? ''}: the action is import DIR`);
  }
  const { version: v, files } = releaseFiles(dir!);
  for (const f of files) {
    note(ctx, `uploading ${f}`);
    await ctx.client.json('PUT', `/api/agent/releases/${seg(v)}/files/${seg(f)}`, {
      body: createReadStream(join(dir!, f)),
      headers: { 'content-type': 'application/octet-stream' },
    });
  }
  const release = await ctx.client.json<AgentReleaseView>(
    'POST',
    `/api/agent/releases/${seg(v)}/publish`,
  );
  ctx.stdout.write(
    ctx.json
      ? jsonText(release)
      : `release ${release.version} published: ${release.artifacts.map((a) => a.target).join(', ')}${release.updatable ? '' : ' (not offered: a signature did not verify)'}\n`,
  );
  return Exit.OK;
};
