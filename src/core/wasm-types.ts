/**
 * Stand-ins for the WebAssembly types that appear in pagewire's public declarations. The
 * `WebAssembly` namespace is declared by TypeScript's DOM lib, not by lib ES2022 or @types/node 20,
 * so naming it in a .d.ts would make Node users add the DOM lib or skipLibCheck. Real
 * `WebAssembly.Memory` and `WebAssembly.Module` values fit these shapes.
 */

/** The part of a `WebAssembly.Memory` pagewire uses. */
export interface WasmMemory {
  /** The memory's current buffer (replaced, and the old one detached, by every `grow`). */
  readonly buffer: ArrayBuffer;
  /** Grow by `deltaPages` 64 KiB pages. @returns the previous size in pages */
  grow(deltaPages: number): number;
}

/** A compiled `WebAssembly.Module` (opaque to callers). */
export type WasmModule = object;
