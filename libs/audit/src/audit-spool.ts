import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { AuditRecord } from './audit-record.js';

/** One line of the spool: an AuditRecord with its bytes as base64. */
interface SpoolLine extends Omit<AuditRecord, 'output'> {
  output?: {
    stdout: string;
    stderr: string;
    stdoutTruncated: boolean;
    stderrTruncated: boolean;
  };
}

const FILE = 'audit-spool.ndjson';
const CURSOR = 'audit-spool.cursor';
/** How much of the spool is read at once when replaying. */
const READ_CHUNK = 1024 * 1024;

function toLine(r: AuditRecord): string {
  const { output, ...rest } = r;
  const line: SpoolLine = rest;
  if (output) {
    line.output = {
      stdout: Buffer.from(output.stdout).toString('base64'),
      stderr: Buffer.from(output.stderr).toString('base64'),
      stdoutTruncated: output.stdoutTruncated,
      stderrTruncated: output.stderrTruncated,
    };
  }
  return `${JSON.stringify(line)}\n`;
}

function fromLine(text: string): AuditRecord {
  const { output, ...rest } = JSON.parse(text) as SpoolLine;
  return {
    ...rest,
    ...(output
      ? {
          output: {
            stdout: Buffer.from(output.stdout, 'base64'),
            stderr: Buffer.from(output.stderr, 'base64'),
            stdoutTruncated: output.stdoutTruncated,
            stderrTruncated: output.stderrTruncated,
          },
        }
      : {}),
  };
}

/**
 * A local, append-only file of audit rows that must not be lost (outcomes, denials) while the
 * database is away: each append is fsync'd before it counts as kept, the file is bounded, and a
 * process that restarts (a crash during an outage) replays what it finds, in order.
 *
 * Layout: `audit-spool.ndjson` (one row a line) and `audit-spool.cursor` (the byte offset up to
 * which rows are in the database, replaced atomically). Once everything is replayed both are
 * emptied. A row committed just before a crash, with the cursor not yet moved, is replayed again
 * (the database's one-outcome-per-request rule refuses the copy); nothing is lost.
 *
 * One process per directory: each replica needs its own.
 */
export class AuditSpool {
  private readonly fd: number;
  private size: number;
  private cursor: number;

  constructor(
    readonly dir: string,
    /** Largest spool file; appends beyond it are refused (the caller keeps rows in memory). */
    readonly maxBytes: number,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.fd = openSync(join(dir, FILE), 'a+', 0o600);
    this.size = fstatSync(this.fd).size;
    // A crash mid-append leaves a partial last line: it was never acknowledged, drop it.
    if (this.size > 0) {
      const tail = Buffer.alloc(Math.min(this.size, READ_CHUNK));
      readSync(this.fd, tail, 0, tail.length, this.size - tail.length);
      const lastNewline = tail.lastIndexOf(0x0a);
      const keep =
        lastNewline < 0 ? this.size - tail.length : this.size - tail.length + lastNewline + 1;
      if (keep !== this.size) {
        ftruncateSync(this.fd, keep);
        fsyncSync(this.fd);
        this.size = keep;
      }
    }
    const cursorFile = join(dir, CURSOR);
    this.cursor = existsSync(cursorFile)
      ? Math.min(Number(readFileSync(cursorFile, 'utf8').trim()) || 0, this.size)
      : 0;
  }

  /** Bytes of rows not yet replayed. */
  get pendingBytes(): number {
    return this.size - this.cursor;
  }

  get empty(): boolean {
    return this.pendingBytes === 0;
  }

  /** Appends rows durably (fsync'd); false, nothing written, when they would pass maxBytes. */
  append(records: AuditRecord[]): boolean {
    if (records.length === 0) {
      return true;
    }
    const data = Buffer.from(records.map(toLine).join(''));
    if (this.size + data.length > this.maxBytes) {
      return false;
    }
    let written = 0;
    while (written < data.length) {
      written += writeSync(this.fd, data, written, data.length - written);
    }
    fsyncSync(this.fd);
    this.size += data.length;
    return true;
  }

  /** Up to `max` rows from the cursor, and the offset after them. */
  peek(max: number): { records: AuditRecord[]; next: number } {
    const records: AuditRecord[] = [];
    let next = this.cursor;
    let readAt = this.cursor;
    let pending = Buffer.alloc(0);
    while (records.length < max && readAt < this.size) {
      const chunk = Buffer.alloc(Math.min(READ_CHUNK, this.size - readAt));
      const n = readSync(this.fd, chunk, 0, chunk.length, readAt);
      if (n === 0) {
        break;
      }
      readAt += n;
      pending = Buffer.concat([pending, chunk.subarray(0, n)]);
      let start = 0;
      for (
        let nl = pending.indexOf(0x0a);
        nl >= 0 && records.length < max;
        nl = pending.indexOf(0x0a, start)
      ) {
        records.push(fromLine(pending.subarray(start, nl).toString('utf8')));
        start = nl + 1;
      }
      next += start;
      pending = pending.subarray(start);
    }
    return { records, next };
  }

  /** Marks rows up to `next` as in the database; empties the spool once all are. */
  consume(next: number): void {
    if (next >= this.size) {
      ftruncateSync(this.fd, 0);
      fsyncSync(this.fd);
      this.size = 0;
      this.cursor = 0;
      this.writeCursor(0);
      return;
    }
    this.cursor = next;
    this.writeCursor(next);
  }

  close(): void {
    closeSync(this.fd);
  }

  private writeCursor(value: number): void {
    const file = join(this.dir, CURSOR);
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${value}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }
}
