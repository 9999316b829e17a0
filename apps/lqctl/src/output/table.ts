// Plain-text tables for people (machine output is --json): a header row, columns padded to
// their widest cell, numbers right-aligned, over-wide cells cut with an ellipsis.

export interface Column {
  header: string;
  align?: 'left' | 'right';
  /** Cells longer than this are cut to it, ending in "…". */
  max?: number;
}

export type Cell = string | number | null | undefined;

/** Display width: one column per code point (enough for the ids, names and paths shown). */
function width(s: string): number {
  return [...s].length;
}

export function truncate(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}

function text(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') {
    return '-';
  }
  // One line per row: a newline in a cell would break the columns.
  return String(cell).replace(/[\r\n\t]+/g, ' ');
}

/**
 * The table as lines joined by "\n", ending in "\n"; two spaces between columns; without its
 * header line when `headers` is false (--no-headers).
 */
export function formatTable(
  columns: readonly Column[],
  rows: readonly Cell[][],
  { headers = true }: { headers?: boolean } = {},
): string {
  const cells = rows.map((row) =>
    columns.map((c, i) => {
      const t = text(row[i]);
      return c.max === undefined ? t : truncate(t, c.max);
    }),
  );
  const widths = columns.map((c, i) =>
    Math.max(width(c.header), ...cells.map((r) => width(r[i]!))),
  );
  const line = (r: string[]) =>
    r
      .map((t, i) => {
        const pad = ' '.repeat(widths[i]! - width(t));
        return columns[i]!.align === 'right' ? pad + t : i === r.length - 1 ? t : t + pad;
      })
      .join('  ')
      .trimEnd();
  const lines = [...(headers ? [line(columns.map((c) => c.header))] : []), ...cells.map(line)];
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** "key:  value" lines with the keys padded to the longest. */
export function formatDetails(pairs: ReadonlyArray<readonly [string, Cell]>): string {
  const w = Math.max(0, ...pairs.map(([k]) => width(k))) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w)} ${text(v)}`.trimEnd()).join('\n') + '\n';
}
