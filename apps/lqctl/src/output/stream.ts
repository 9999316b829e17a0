/** Writes and waits for the stream to take it (backpressure), so output keeps its order. */
export function writeTo(stream: NodeJS.WritableStream, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/** A JSON value on one line (NDJSON) or pretty (a single document). */
export function jsonText(value: unknown, pretty = true): string {
  return `${pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value)}\n`;
}
