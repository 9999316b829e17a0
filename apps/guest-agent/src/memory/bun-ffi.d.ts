// The part of Bun's `bun:ffi` the agent uses (memory/code-pages.ts, files/directory-stream.ts),
// loaded only under Bun.
declare module 'bun:ffi' {
  export const FFIType: { u64: number; i32: number; ptr: number };
  export function dlopen(
    path: string,
    symbols: Record<string, { args: number[]; returns: number }>,
  ): {
    symbols: Record<string, (...args: Array<number | bigint | Uint8Array>) => number>;
    close(): void;
  };
  /** A NUL-terminated string at a native address (UTF-8). */
  export class CString extends String {
    constructor(ptr: number, byteOffset?: number, byteLength?: number);
  }
}
