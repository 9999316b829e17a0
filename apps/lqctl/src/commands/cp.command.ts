import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { once } from 'node:events';
import { parseMode, parseRemotePath, str } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { ProgressLine, formatBytes, formatDuration, transferLine } from '../output/progress.js';
import { jsonText, writeTo } from '../output/stream.js';
import { note, seg, type Command, type Context } from './context.js';
import type { FileWrittenView } from '@lq/api';

export type CopyPlan =
  | { direction: 'upload'; local: string; vm: string; path: string }
  | { direction: 'download'; vm: string; path: string; local: string };

/** Which way `cp SRC DST` goes; exactly one side is VM:/absolute/path. "-" is stdin/stdout. */
export function planCopy(src: string, dst: string): CopyPlan {
  const from = parseRemotePath(src);
  const to = parseRemotePath(dst);
  if (from && to) {
    throw new UsageError('cp copies between this machine and a VM, not between two VMs');
  }
  if (!from && !to) {
    throw new UsageError('cp needs one side as VM:/absolute/path, e.g. lqctl cp ./f vm-1:/tmp/f');
  }
  if (to) {
    const path = to.path.endsWith('/') && src !== '-' ? `${to.path}${basename(src)}` : to.path;
    return { direction: 'upload', local: src, vm: to.vm, path };
  }
  return { direction: 'download', vm: from!.vm, path: from!.path, local: dst };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Counts bytes as they pass and redraws the progress line. */
async function* metered(
  source: AsyncIterable<Buffer | Uint8Array>,
  onBytes: (n: number) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    onBytes(chunk.length);
    yield chunk;
  }
}

function progress(ctx: Context, total: number | undefined) {
  const line = ctx.stderr.isTTY && !ctx.json ? new ProgressLine(ctx.stderr) : undefined;
  const t0 = Date.now();
  let bytes = 0;
  return {
    add(n: number) {
      bytes += n;
      line?.update(transferLine(bytes, total, Date.now() - t0));
    },
    done() {
      line?.clear();
      return { bytes, ms: Date.now() - t0 };
    },
  };
}

async function upload(
  ctx: Context,
  plan: Extract<CopyPlan, { direction: 'upload' }>,
  mode?: string,
) {
  let size: number | undefined;
  let source: AsyncIterable<Buffer | Uint8Array>;
  if (plan.local === '-') {
    source = ctx.stdin as AsyncIterable<Buffer>;
  } else {
    const st = statSync(plan.local, { throwIfNoEntry: false });
    if (!st) {
      throw new UsageError(`${plan.local}: no such file`);
    }
    if (!st.isFile()) {
      throw new UsageError(`${plan.local} is not a regular file`);
    }
    size = st.size;
    source = createReadStream(plan.local, { highWaterMark: 256 * 1024 });
  }
  const meter = progress(ctx, size);
  let res: FileWrittenView;
  try {
    res = await ctx.client.json('PUT', `/api/vms/${seg(plan.vm)}/files`, {
      query: { path: plan.path, mode },
      body: metered(source, (n) => meter.add(n)),
      headers: {
        'content-type': 'application/octet-stream',
        ...(size === undefined ? {} : { 'content-length': String(size) }),
      },
    });
  } finally {
    meter.done();
  }
  const { ms } = meter.done();
  if (ctx.json) {
    await writeTo(ctx.stdout, jsonText({ ...res, duration_ms: ms }));
  } else {
    note(
      ctx,
      `copied ${formatBytes(res.bytes)} to ${plan.vm}:${plan.path} in ${formatDuration(ms)}`,
    );
  }
}

async function download(ctx: Context, plan: Extract<CopyPlan, { direction: 'download' }>) {
  const res = await ctx.client.request('GET', `/api/vms/${seg(plan.vm)}/files`, {
    query: { path: plan.path },
  });
  const toStdout = plan.local === '-';
  const dest = isDirectory(plan.local) ? join(plan.local, basename(plan.path)) : plan.local;
  // Written beside the destination and renamed at the end: a cut transfer leaves no half file
  // under the real name (the server cuts the connection when the guest fails mid-file).
  const partial = `${dest}.lqctl-${process.pid}.partial`;
  const out = toStdout ? ctx.stdout : createWriteStream(partial, { mode: 0o644 });
  const meter = progress(ctx, undefined);
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      meter.add(chunk.length);
      if (!out.write(chunk)) {
        await once(out, 'drain');
      }
    }
    if (!toStdout) {
      out.end();
      await once(out, 'finish');
      renameSync(partial, dest);
    }
  } catch (err) {
    if (!toStdout) {
      out.destroy();
      rmSync(partial, { force: true });
    }
    throw new Error(
      `download of ${plan.vm}:${plan.path} broke off after ${formatBytes(meter.done().bytes)}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const { bytes, ms } = meter.done();
  if (ctx.json) {
    await writeTo(
      toStdout ? ctx.stderr : ctx.stdout,
      jsonText({ vm_id: plan.vm, path: plan.path, local: dest, bytes, duration_ms: ms }),
    );
  } else {
    note(
      ctx,
      `copied ${formatBytes(bytes)} from ${plan.vm}:${plan.path}${toStdout ? '' : ` to ${dest}`} in ${formatDuration(ms)}`,
    );
  }
}

/**
 * Where relative local paths start: the caller's directory. `npm run lqctl` runs in the
 * package root, but npm says where it was started (INIT_CWD).
 */
export function localPath(path: string, env: NodeJS.ProcessEnv = process.env): string {
  if (path === '-') {
    return path;
  }
  const base = env.npm_lifecycle_event === 'lqctl' && env.INIT_CWD ? env.INIT_CWD : process.cwd();
  return resolve(base, path);
}

/** `lqctl cp LOCAL VM:/path` and `lqctl cp VM:/path LOCAL`, streamed, with progress on a TTY. */
export const cpCommand: Command = async (ctx, cmd) => {
  const [src, dst] = cmd.positionals as [string, string];
  const planned = planCopy(src, dst);
  const plan = { ...planned, local: localPath(planned.local) };
  const mode = str(cmd, 'mode');
  if (mode !== undefined) {
    parseMode(mode);
    if (plan.direction === 'download') {
      throw new UsageError('--mode applies to uploads (the guest file gets these permission bits)');
    }
  }
  if (plan.direction === 'upload') {
    await upload(ctx, plan, mode);
  } else {
    await download(ctx, plan);
  }
  return Exit.OK;
};
