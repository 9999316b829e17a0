// zlib.crc32 is native (Node >= 20.15 / 22.2); guests may run an older Node, so keep a
// table-driven fallback with the same result (CRC-32/IEEE, as zlib). Small frames use the table:
// loading zlib costs the agent ~1.4 MiB of resident memory it only needs for bulk data.
const TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    }
    table[n] = c;
  }
  return table;
})();

export function crc32Js(data: Uint8Array, previous = 0, start = 0, end = data.length): number {
  let crc = (previous ^ -1) | 0;
  for (let i = start; i < end; i++) {
    crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ -1) >>> 0;
}

type NativeCrc32 = (data: Uint8Array, value?: number) => number;
const NATIVE_FROM_BYTES = 4096;
let native: NativeCrc32 | null | undefined;

function loadNative(): NativeCrc32 | null {
  const getBuiltin = (
    process as unknown as { getBuiltinModule?: (id: string) => { crc32?: NativeCrc32 } }
  ).getBuiltinModule;
  return getBuiltin?.('node:zlib').crc32 ?? null;
}

/** CRC-32 of data; pass the previous result to continue over several buffers. */
export function crc32(data: Uint8Array, previous = 0): number {
  if (data.length < NATIVE_FROM_BYTES) {
    return crc32Js(data, previous);
  }
  if (native === undefined) {
    native = loadNative();
  }
  return native ? native(data, previous) >>> 0 : crc32Js(data, previous);
}

/**
 * CRC-32 of data[start, end) without making a view of it (a subarray costs about a microsecond
 * under Bun, more than the CRC of a frame header).
 */
export function crc32Range(data: Uint8Array, start: number, end: number, previous = 0): number {
  if (end - start < NATIVE_FROM_BYTES) {
    return crc32Js(data, previous, start, end);
  }
  return crc32(data.subarray(start, end), previous);
}
