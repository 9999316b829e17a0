import { bool, list, parseTimeoutSeconds, str } from '../args.js';
import { ApiError, NotOfferedError, UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { jsonText } from '../output/stream.js';
import { seg, type Command } from './context.js';
import type { HookView, QuiesceBody, QuiesceStatusView, QuiesceView, ThawView } from '@lq/api';

function hookLines(hooks: readonly HookView[]): string[] {
  return hooks.map(
    (h) =>
      `  hook ${h.name} (${h.phase}): ${
        h.timed_out
          ? 'timed out'
          : h.signal
            ? `killed by ${h.signal}`
            : `exit ${h.exit_code ?? '?'}`
      } in ${h.duration_ms} ms`,
  );
}

export function describeQuiesce(r: QuiesceView): string {
  const lines = [
    `${r.vm_id}: froze ${r.frozen.length > 0 ? r.frozen.join(', ') : 'no filesystems'}`,
    ...hookLines(r.hooks),
  ];
  if (r.thaw_deadline) {
    lines.push(`  thaws by itself at ${r.thaw_deadline} unless lqctl thaw ${r.vm_id} comes first`);
  }
  return `${lines.join('\n')}\n`;
}

export function describeThaw(r: ThawView): string {
  const head = r.was_frozen
    ? `${r.vm_id}: thawed ${r.thawed.length > 0 ? r.thawed.join(', ') : 'no filesystems'}`
    : `${r.vm_id}: was not frozen`;
  return `${[head, ...hookLines(r.hooks)].join('\n')}\n`;
}

export function describeStatus(r: QuiesceStatusView): string {
  if (r.frozen) {
    return `${r.vm_id}: frozen since ${r.frozen_at ?? '?'} (${r.mount_points.join(', ') || '?'})${
      r.thaw_deadline ? `; thaws by itself at ${r.thaw_deadline}` : ''
    }\n`;
  }
  return `${r.vm_id}: not frozen${r.last_auto_thaw ? ` (last thawed by itself at ${r.last_auto_thaw})` : ''}\n`;
}

/**
 * A control plane without the route answers 404 with a code other than VM_NOT_FOUND (405, 501
 * from proxies): "not offered", exit 2, rather than a confusing "not found".
 */
function notOffered(err: unknown, op: string, vm: string): unknown {
  if (
    err instanceof ApiError &&
    ((err.status === 404 && err.code !== 'VM_NOT_FOUND') ||
      err.status === 405 ||
      err.status === 501)
  ) {
    return new NotOfferedError(
      `this control plane does not offer ${op} yet (/api/vms/${vm}/${op} answered ${err.status}: ${err.message})`,
    );
  }
  return err;
}

/**
 * `lqctl quiesce VM [--mount P]… [--timeout S]` freezes the guest's filesystems (POST
 * /api/vms/:id/quiesce); `--status` asks whether it is frozen; `lqctl thaw VM` thaws it.
 */
export function quiesceCommand(op: 'quiesce' | 'thaw'): Command {
  return async (ctx, cmd) => {
    const vm = cmd.positionals[0]!;
    const path = `/api/vms/${seg(vm)}/${op}`;
    try {
      if (op === 'thaw') {
        const r = await ctx.client.json<ThawView>('POST', path, { json: {} });
        ctx.stdout.write(ctx.json ? jsonText(r) : describeThaw(r));
        return Exit.OK;
      }
      if (bool(cmd, 'status')) {
        if (list(cmd, 'mount').length > 0 || str(cmd, 'timeout') !== undefined) {
          throw new UsageError('--status takes no --mount or --timeout');
        }
        const r = await ctx.client.json<QuiesceStatusView>('GET', path);
        ctx.stdout.write(ctx.json ? jsonText(r) : describeStatus(r));
        return Exit.OK;
      }
      const body: QuiesceBody = {};
      const mounts = list(cmd, 'mount');
      if (mounts.length > 0) {
        body.mount_points = mounts;
      }
      const timeout = str(cmd, 'timeout');
      if (timeout !== undefined) {
        body.timeout_seconds = parseTimeoutSeconds(timeout);
      }
      const r = await ctx.client.json<QuiesceView>('POST', path, { json: body });
      ctx.stdout.write(ctx.json ? jsonText(r) : describeQuiesce(r));
      return Exit.OK;
    } catch (err) {
      throw notOffered(err, op, vm);
    }
  };
}
