// The cursor of the operators' history pages (GET /api/executions, GET /api/runs): the last
// row's (created_at, id), opaque to the client. created_at travels as PostgreSQL printed it, so
// a page boundary inside one millisecond neither skips nor repeats a row.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PG_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2}){0,2}$/;

export interface HistoryCursor {
  at: string;
  id: string;
}

export function encodeCursor(c: HistoryCursor): string {
  return Buffer.from(`${c.at}|${c.id}`, 'utf8').toString('base64url');
}

/** The cursor, or undefined when `text` is not one this server made. */
export function decodeCursor(text: string): HistoryCursor | undefined {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) {
    return undefined;
  }
  const [at, id, extra] = Buffer.from(text, 'base64url').toString('utf8').split('|');
  if (extra !== undefined || !at || !id || !PG_TIME.test(at) || !UUID.test(id)) {
    return undefined;
  }
  return { at, id };
}

/** The next page's cursor: the last row's, when the page was full. */
export function nextCursor(
  rows: ReadonlyArray<{ cursor_at: string; id: string }>,
  limit: number,
): string | null {
  const last = rows.at(-1);
  return rows.length === limit && last ? encodeCursor({ at: last.cursor_at, id: last.id }) : null;
}
