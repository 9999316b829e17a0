import { bool, parseAmount, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { ProgressLine, formatCounts, runProgressLine } from '../output/progress.js';
import { writeTo } from '../output/stream.js';
import { formatTable } from '../output/table.js';
import { cancelOnInterrupt } from './cancel-on-interrupt.js';
import { note, seg, type Command } from './context.js';
import { executeBody, inCallerTerms } from './exec.command.js';
import { printRun } from './history.command.js';
import { isMachine, outputFormat } from '../output/listing.js';
import type { RunBody, RunProgressView, RunTargetBody, RunView } from '@lq/api';

/** The target of POST /api/runs from exactly one of --target, --vms, --project. */
export function runTarget(cmd: ParsedCommand): RunTargetBody {
  const labels = str(cmd, 'target');
  const vms = str(cmd, 'vms');
  const project = str(cmd, 'project');
  const given = [labels, vms, project].filter((v) => v !== undefined).length;
  if (given !== 1) {
    throw new UsageError(
      'run needs one target: --target env=prod,role=db (labels), --vms a,b,c or --project P',
    );
  }
  if (labels !== undefined) {
    return { labels };
  }
  if (vms !== undefined) {
    const ids = vms
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    if (ids.length === 0) {
      throw new UsageError('--vms needs VM ids: --vms vm-1,vm-2');
    }
    return { vm_ids: ids };
  }
  return { project };
}

/** The body of POST /api/runs. */
export function runBody(cmd: ParsedCommand): RunBody {
  const body: RunBody = { ...executeBody(cmd, 'run'), target: runTarget(cmd) };
  const concurrency = str(cmd, 'max-concurrency');
  if (concurrency !== undefined) {
    body.max_concurrency = parseAmount(concurrency, '--max-concurrency', 1);
  }
  const errors = str(cmd, 'max-errors');
  if (errors !== undefined) {
    body.max_errors = parseAmount(errors, '--max-errors', 0);
  }
  return body;
}

/** The per-VM summary table, VMs in natural order (vm-2 before vm-10). */
export function runTable(view: RunView): string {
  const vms = [...view.vms].sort((a, b) =>
    a.vm_id.localeCompare(b.vm_id, undefined, { numeric: true }),
  );
  return formatTable(
    [
      { header: 'VM' },
      { header: 'STATE' },
      { header: 'EXIT', align: 'right' },
      { header: 'EXECUTION' },
      { header: 'ERROR', max: 60 },
    ],
    vms.map((v) => [v.vm_id, v.state, v.exit_code, v.execution_id, v.error]),
  );
}

/** 0 only when the run and every VM in it succeeded; 130 when cancelled; else 1. */
export function runExitCode(view: RunView): number {
  if (view.status === 'cancelled') {
    return Exit.CANCELLED;
  }
  return view.status === 'succeeded' && view.vms.every((v) => v.state === 'succeeded')
    ? Exit.OK
    : Exit.FAILED;
}

const PLAIN_PROGRESS_EVERY_MS = 2000;

/**
 * `lqctl run TARGET -- CMD…`: starts a fleet run, shows its progress (a bar on a terminal, a
 * line every few seconds otherwise), then each VM's outcome. Ctrl-C cancels the run.
 */
export const runCommand: Command = async (ctx, cmd) => {
  const body = runBody(cmd);
  const format = outputFormat(cmd);
  const interrupt = cancelOnInterrupt(ctx, 'run', (id) => `/api/runs/${seg(id)}/cancel`);
  const bar = ctx.stderr.isTTY ? new ProgressLine(ctx.stderr) : undefined;
  try {
    const started = await ctx.client
      .json<RunView>('POST', '/api/runs', { json: body })
      .catch((err: unknown) => {
        throw inCallerTerms(err, cmd);
      });
    const id = started.id;
    note(
      ctx,
      `run ${id}: ${started.vms.length} VMs, at most ${started.max_concurrency} at a time${
        started.max_errors === null ? '' : `, stopping after ${started.max_errors + 1} failures`
      }`,
    );
    interrupt.started(id);
    let end: RunView | undefined;
    let lastLine = '';
    let lastAt = 0;
    for await (const e of ctx.client.follow(`/api/runs/${seg(id)}/events`, {
      isEnd: (ev) => ev.event === 'end',
      onReconnect: (why) => {
        bar?.clear();
        note(ctx, `progress stream of run ${id} broke (${why}); reconnecting`);
      },
    })) {
      if (e.event === 'progress') {
        const p = JSON.parse(e.data) as RunProgressView;
        if (bar) {
          bar.update(runProgressLine(p.summary), true);
        } else {
          const line = runProgressLine(p.summary, 0);
          if (line !== lastLine && Date.now() - lastAt >= PLAIN_PROGRESS_EVERY_MS) {
            note(ctx, `run ${id}: ${line}`);
            lastLine = line;
            lastAt = Date.now();
          }
        }
      } else if (e.event === 'end') {
        end = JSON.parse(e.data) as RunView;
      }
    }
    bar?.clear();
    if (!end) {
      throw new Error(`the progress stream of run ${id} ended without its end event`);
    }
    await printRun(ctx, cmd, end, bool(cmd, 'show-output'), false);
    if (!isMachine(format) && format !== 'name') {
      await writeTo(ctx.stdout, `\nrun ${end.id} ${end.status}: ${formatCounts(end.summary)}\n`);
    }
    return runExitCode(end);
  } finally {
    bar?.clear();
    interrupt.dispose();
  }
};
