/** CSV of flat rows (RFC 4180): every field quoted when it needs it; objects as JSON. */
export function csvField(value: string | number | boolean | object | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  const s = typeof value === 'object' ? JSON.stringify(value) : String(value);
  // A leading = + - @ would be read as a formula by spreadsheets: keep it text.
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) || safe !== s ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function csvLine(
  columns: readonly string[],
  row: Record<string, string | number | boolean | object | null | undefined>,
): string {
  return `${columns.map((c) => csvField(row[c])).join(',')}\r\n`;
}
