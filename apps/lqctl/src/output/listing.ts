// Every listing and `show` prints the same ways, as kubectl's do: a table (default), `-o wide`
// (more columns), `-o json` / `-o yaml` (the API's objects), `-o name` (one id a line, for
// xargs), and `--no-headers` for a table without its header line. `--json` is `-o json`.
import { bool, str, type ParsedCommand } from '../args.js';
import { UsageError } from '../errors.js';
import { jsonText, writeTo } from './stream.js';
import { formatTable, type Cell, type Column } from './table.js';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The format -o / --output asks for (--json is -o json); a UsageError names what is allowed. */
export function outputFormat(cmd: ParsedCommand): OutputFormat {
  const o = str(cmd, 'output');
  if (o === undefined) {
    return bool(cmd, 'json') ? 'json' : 'table';
  }
  if (!(OUTPUT_FORMATS as readonly string[]).includes(o)) {
    throw new UsageError(`-o must be one of ${OUTPUT_FORMATS.join(', ')} (got ${o})`);
  }
  if (bool(cmd, 'json') && o !== 'json') {
    throw new UsageError(`--json and -o ${o} disagree: give one`);
  }
  return o as OutputFormat;
}

/** Whether the output is for machines (json or yaml). */
export function isMachine(f: OutputFormat): boolean {
  return f === 'json' || f === 'yaml';
}

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_ ./:@%+-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|~|y|n)$/i;

function scalar(v: unknown): string {
  if (v === null || v === undefined) {
    return 'null';
  }
  if (typeof v === 'number' || typeof v === 'boolean') {
    return String(v);
  }
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  // Plain when a YAML 1.1 or 1.2 reader cannot take it for anything but this string.
  return PLAIN.test(s) && !RESERVED.test(s) && !s.endsWith(' ') && !s.includes(': ')
    ? s
    : JSON.stringify(s);
}

function isEmptyCollection(v: unknown): boolean {
  return (
    typeof v === 'object' &&
    v !== null &&
    (Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0)
  );
}

function yamlLines(v: unknown, indent: string): string[] {
  if (Array.isArray(v)) {
    return v.flatMap((item) => {
      if (typeof item === 'object' && item !== null && !isEmptyCollection(item)) {
        const [first, ...rest] = yamlLines(item, `${indent}  `);
        return [`${indent}- ${first!.trimStart()}`, ...rest];
      }
      return [`${indent}- ${leaf(item)}`];
    });
  }
  return Object.entries(v as Record<string, unknown>)
    .filter(([, value]) => value !== undefined)
    .flatMap(([key, value]) => {
      const k = scalar(key);
      if (typeof value === 'object' && value !== null && !isEmptyCollection(value)) {
        return [`${indent}${k}:`, ...yamlLines(value, `${indent}  `)];
      }
      return [`${indent}${k}: ${leaf(value)}`];
    });
}

function leaf(v: unknown): string {
  if (Array.isArray(v)) {
    return '[]';
  }
  if (typeof v === 'object' && v !== null) {
    return '{}';
  }
  return scalar(v);
}

/** A JSON value as YAML (block style; strings quoted as JSON when plain would be ambiguous). */
export function toYaml(value: unknown): string {
  if (typeof value !== 'object' || value === null || isEmptyCollection(value)) {
    return `${leaf(value)}\n`;
  }
  return `${yamlLines(value, '').join('\n')}\n`;
}

/** A column of a listing: `wide` ones only with -o wide. */
export interface ListColumn<T> extends Column {
  cell: (item: T) => Cell;
  wide?: boolean;
}

export interface ListSpec<T> {
  columns: ReadonlyArray<ListColumn<T>>;
  /** What -o name prints for an item. */
  name: (item: T) => string;
}

/** The listing in the format asked for. */
export function renderList<T>(
  format: OutputFormat,
  items: readonly T[],
  spec: ListSpec<T>,
  headers = true,
): string {
  switch (format) {
    case 'json':
      return jsonText(items);
    case 'yaml':
      return toYaml(items);
    case 'name':
      return items.map((i) => `${spec.name(i)}\n`).join('');
    case 'table':
    case 'wide': {
      const columns = spec.columns.filter((c) => format === 'wide' || !c.wide);
      return formatTable(
        columns,
        items.map((i) => columns.map((c) => c.cell(i))),
        { headers },
      );
    }
  }
}

/** Prints a listing per the command's -o / --json / --no-headers. */
export async function printList<T>(
  out: NodeJS.WritableStream,
  cmd: ParsedCommand,
  items: readonly T[],
  spec: ListSpec<T>,
): Promise<void> {
  await writeTo(out, renderList(outputFormat(cmd), items, spec, !bool(cmd, 'no-headers')));
}

/** Prints one object: json or yaml as is, name as its id, otherwise `details()`. */
export async function printOne<T>(
  out: NodeJS.WritableStream,
  cmd: ParsedCommand,
  item: T,
  name: (item: T) => string,
  details: (wide: boolean) => string,
): Promise<void> {
  const f = outputFormat(cmd);
  const text =
    f === 'json'
      ? jsonText(item)
      : f === 'yaml'
        ? toYaml(item)
        : f === 'name'
          ? `${name(item)}\n`
          : details(f === 'wide');
  await writeTo(out, text);
}
