import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import {
  ExportFormatError,
  checkpointKeyId,
  checkpointPublicKey,
  verifyExport,
  type ExportReport,
} from '@lq/audit/offline';
import { str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { jsonText, writeTo } from '../output/stream.js';
import { note, type Command } from './context.js';

/** `lqctl audit export [FILE]`: GET /api/audit/export into FILE or stdout, as it comes. */
export const auditExportCommand: Command = async (ctx, cmd) => {
  const file = cmd.positionals[0];
  const res = await ctx.client.request('GET', '/api/audit/export');
  const out = file === undefined || file === '-' ? undefined : createWriteStream(file);
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    if (out) {
      if (!out.write(chunk)) {
        await new Promise<void>((r) => out.once('drain', () => r()));
      }
    } else {
      await writeTo(ctx.stdout, chunk);
    }
  }
  if (out) {
    out.end();
    await finished(out);
    note(ctx, `wrote ${file}; check it with lqctl audit verify ${file} --public-key K`);
  }
  return Exit.OK;
};

/** The --public-key value: base64, or @FILE holding it. */
export function publicKeyArg(cmd: ParsedCommand): string {
  const value = str(cmd, 'public-key');
  if (value === undefined) {
    throw new UsageError(
      '--public-key is required: the key from GET /api/audit/public-key (or the control plane’s start log), obtained apart from the export',
    );
  }
  const text = value.startsWith('@') ? readFileSync(value.slice(1), 'utf8').trim() : value;
  try {
    checkpointPublicKey(text);
  } catch (err) {
    throw new UsageError(`--public-key: ${(err as Error).message}`);
  }
  return text;
}

export function describeReport(r: ExportReport): string[] {
  const lines: string[] = [];
  lines.push(
    r.ok
      ? `intact: ${r.rows} rows (last seq ${r.last_seq ?? '-'}), ${r.checkpoints_checked} signed checkpoints matched`
      : `NOT INTACT: ${r.rows} rows read (last seq ${r.last_seq ?? '-'})`,
  );
  if (r.first_broken) {
    lines.push(`first broken row: ${r.first_broken.seq}: ${r.first_broken.reason}`);
  }
  for (const p of r.checkpoint_problems ?? []) {
    lines.push(`checkpoint problem: ${p}`);
  }
  if (!r.complete) {
    lines.push('the file ends before its end line: the export was cut short');
  }
  lines.push(
    r.checkpoint
      ? `latest checkpoint: row ${r.checkpoint.seq}, signed ${r.checkpoint.at} (${r.checkpoint.source})`
      : 'no signed checkpoint in the file: rows cut from the end could not be noticed',
  );
  if (r.checkpoints_unknown_key > 0) {
    lines.push(`${r.checkpoints_unknown_key} checkpoints signed by another key were not used`);
  }
  return lines;
}

/**
 * `lqctl audit verify FILE --public-key K`: checks an export offline, with bounded memory
 * (libs/audit/src/offline). Exit 0 intact, 1 not intact, 2 not an export.
 */
export const auditVerifyCommand: Command = async (ctx, cmd) => {
  const key = publicKeyArg(cmd);
  const file = cmd.positionals[0]!;
  const input = file === '-' ? ctx.stdin : createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    if (file === '-') {
      resolve();
      return;
    }
    input.once('open', () => resolve());
    input.once('error', (err: NodeJS.ErrnoException) =>
      reject(new UsageError(`cannot read ${file}: ${err.code ?? err.message}`)),
    );
  });
  await opened;
  let report: ExportReport;
  try {
    report = await verifyExport(
      createInterface({ input, crlfDelay: Infinity }),
      new Map([[checkpointKeyId(key), checkpointPublicKey(key)]]),
    );
  } catch (err) {
    if (err instanceof ExportFormatError) {
      throw new UsageError(`${file}: ${err.message}`);
    }
    throw err;
  }
  if (ctx.json) {
    await writeTo(ctx.stdout, jsonText(report));
  } else {
    await writeTo(ctx.stdout, `${describeReport(report).join('\n')}\n`);
  }
  return report.ok ? Exit.OK : Exit.FAILED;
};
