/**
 * LZ4 through lz4-wasm's module (lz4_flex compiled to wasm), loaded by our own small loader from
 * bytes embedded at build time (src/codec/lz4-wasm.generated.ts), so it works in Node, bundlers,
 * workers and pages without a wasm plugin.
 *
 * Format (the same bytes as lz4-wasm / lz4-wasm-nodejs `compress`): a 4-byte little-endian
 * uncompressed length followed by one raw LZ4 block.
 *
 * Calling convention of the module (wasm-bindgen): `compress(retptr, ptr, len)` and
 * `decompress(retptr, ptr, len)` take input copied into memory from `__wbindgen_malloc` (which the
 * call consumes) and write [outPtr, outLen, errIdx, isErr] at `retptr` (16 bytes reserved with
 * `__wbindgen_add_to_stack_pointer(-16)`); the output block is ours to copy and `__wbindgen_free`.
 * Here input is copied in once and output copied once straight into the caller's buffer: no
 * per-call JS allocation.
 *
 * Safety: a block's declared length is checked against the length the caller expects before the
 * module sees it (it would allocate that much); errors and traps become PagewireError LZ4_CORRUPT,
 * and after a trap the instance is replaced (its stack pointer is then unknown).
 */
import { PagewireError, ErrorCode } from '../errors.js';
import { base64ToBytes } from '../core/loader.js';
import { LZ4_WASM_BASE64 } from './lz4-wasm.generated.js';

interface Lz4Exports {
  memory: WebAssembly.Memory;
  compress(retptr: number, ptr: number, len: number): void;
  decompress(retptr: number, ptr: number, len: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}

let modulePromise: Promise<WebAssembly.Module> | undefined;
let shared: Lz4 | undefined;

const IMPORTS = {
  './lz4_wasm_bg.js': {
    // Error strings become heap objects in wasm-bindgen's glue; we only need "an error happened".
    __wbindgen_string_new: (_ptr: number, _len: number): number => 0,
  },
};

/** Largest output of {@link Lz4.compressInto} for `n` input bytes (4-byte header included). */
export function lz4MaxCompressedSize(n: number): number {
  return 4 + n + Math.ceil(n / 255) + 16;
}

/** An lz4-wasm instance with copy-once calls. One per realm is enough ({@link loadLz4}). */
export class Lz4 {
  private ex: Lz4Exports;
  private u8: Uint8Array;
  private i32: Int32Array;

  constructor(private readonly mod: WebAssembly.Module) {
    this.ex = new WebAssembly.Instance(mod, IMPORTS).exports as unknown as Lz4Exports;
    this.u8 = new Uint8Array(this.ex.memory.buffer);
    this.i32 = new Int32Array(this.ex.memory.buffer);
  }

  private views(): void {
    if (this.u8.buffer !== this.ex.memory.buffer) {
      this.u8 = new Uint8Array(this.ex.memory.buffer);
      this.i32 = new Int32Array(this.ex.memory.buffer);
    }
  }

  /**
   * Compress `src` into `dst` at `dstOffset` (needs {@link lz4MaxCompressedSize} bytes free).
   * @returns bytes written (header + block)
   */
  compressInto(src: Uint8Array, dst: Uint8Array, dstOffset = 0): number {
    return this.call(true, src, dst, dstOffset, -1);
  }

  /**
   * Decompress one block (header + LZ4 block) that must hold exactly `expectedLen` bytes into
   * `dst` at `dstOffset`.
   * @throws PagewireError LZ4_CORRUPT on a wrong declared length, a malformed block or a size mismatch
   */
  decompressInto(src: Uint8Array, expectedLen: number, dst: Uint8Array, dstOffset = 0): void {
    if (src.byteLength < 4) throw new PagewireError(ErrorCode.LZ4_CORRUPT, 'LZ4 block shorter than its 4-byte length');
    const declared = (src[0]! | (src[1]! << 8) | (src[2]! << 16) | (src[3]! << 24)) >>> 0;
    if (declared !== expectedLen) {
      throw new PagewireError(ErrorCode.LZ4_CORRUPT, `LZ4 block declares ${declared} bytes, expected ${expectedLen}`);
    }
    if (dst.byteLength - dstOffset < expectedLen) {
      throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'LZ4 destination too small');
    }
    this.call(false, src, dst, dstOffset, expectedLen);
  }

  private call(comp: boolean, src: Uint8Array, dst: Uint8Array, dstOffset: number, expected: number): number {
    const ex = this.ex;
    let retptr = 0;
    let stacked = false;
    try {
      retptr = ex.__wbindgen_add_to_stack_pointer(-16);
      stacked = true;
      const inPtr = ex.__wbindgen_malloc(Math.max(src.byteLength, 1));
      this.views();
      this.u8.set(src, inPtr);
      if (comp) ex.compress(retptr, inPtr, src.byteLength);
      else ex.decompress(retptr, inPtr, src.byteLength);
      this.views();
      const r = retptr >> 2;
      const outPtr = this.i32[r]! >>> 0;
      const outLen = this.i32[r + 1]! >>> 0;
      if (!comp && this.i32[r + 3]! !== 0) {
        throw new PagewireError(ErrorCode.LZ4_CORRUPT, 'LZ4 block is malformed');
      }
      try {
        if (!comp && outLen !== expected) {
          throw new PagewireError(ErrorCode.LZ4_CORRUPT, `LZ4 block decompressed to ${outLen} bytes, expected ${expected}`);
        }
        if (dst.byteLength - dstOffset < outLen) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'LZ4 destination too small');
        dst.set(this.u8.subarray(outPtr, outPtr + outLen), dstOffset);
      } finally {
        ex.__wbindgen_free(outPtr, outLen);
      }
      return outLen;
    } catch (err) {
      if (err instanceof PagewireError) throw err;
      // A trap (panic, out of memory): the instance's state is unknown; start a fresh one.
      stacked = false;
      this.reset();
      throw new PagewireError(comp ? ErrorCode.WASM_FAILED : ErrorCode.LZ4_CORRUPT, comp ? 'LZ4 compression failed' : 'LZ4 block is malformed', { cause: err });
    } finally {
      if (stacked) ex.__wbindgen_add_to_stack_pointer(16);
    }
  }

  private reset(): void {
    this.ex = new WebAssembly.Instance(this.mod, IMPORTS).exports as unknown as Lz4Exports;
    this.u8 = new Uint8Array(this.ex.memory.buffer);
    this.i32 = new Int32Array(this.ex.memory.buffer);
  }
}

/** The realm's LZ4 instance (compiled and instantiated once). */
export async function loadLz4(): Promise<Lz4> {
  if (shared) return shared;
  modulePromise ??= WebAssembly.compile(base64ToBytes(LZ4_WASM_BASE64) as BufferSource).catch((cause: unknown) => {
    modulePromise = undefined;
    throw new PagewireError(ErrorCode.WASM_FAILED, 'pagewire: could not compile the LZ4 module', { cause });
  });
  const mod = await modulePromise;
  shared ??= new Lz4(mod);
  return shared;
}

/** The loaded LZ4 instance. @throws PagewireError NOT_READY before {@link loadLz4} resolved */
export function lz4(): Lz4 {
  if (!shared) throw new PagewireError(ErrorCode.NOT_READY, 'pagewire: await loadLz4() (or ready()) first');
  return shared;
}

/** Compress `data` (4-byte LE length + LZ4 block, lz4-wasm's format). Needs {@link loadLz4}. */
export function lz4Compress(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(lz4MaxCompressedSize(data.byteLength));
  const n = lz4().compressInto(data, out, 0);
  return out.subarray(0, n);
}

/**
 * Decompress a block that must hold exactly `expectedLen` bytes.
 * @throws PagewireError LZ4_CORRUPT
 */
export function lz4Decompress(block: Uint8Array, expectedLen: number): Uint8Array {
  if (!Number.isInteger(expectedLen) || expectedLen < 0) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'expectedLen must be a non-negative integer');
  const out = new Uint8Array(expectedLen);
  lz4().decompressInto(block, expectedLen, out, 0);
  return out;
}
