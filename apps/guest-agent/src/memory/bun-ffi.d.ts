// The part of Bun's `bun:ffi` the agent uses (memory/code-pages.ts), loaded only under Bun.
declare module 'bun:ffi' {
  export const FFIType: { u64: number; i32: number };
  export function dlopen(
    path: string,
    symbols: Record<string, { args: number[]; returns: number }>,
  ): { symbols: Record<string, (...args: Array<number | bigint>) => number>; close(): void };
}
