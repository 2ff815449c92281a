/**
 * LZ4 in two implementations with the same block framing (a 4-byte little-endian uncompressed
 * length, then one raw LZ4 block; any LZ4 block decoder reads it):
 *
 * - the pagewire core's own compressor and decoder (assembly/lz4.ts), working on bytes already in
 *   a core's linear memory: {@link coreLz4Compress} / {@link coreLz4Decompress} (pointers, one call
 *   per block of page records: what the codec pipeline uses) and the one-shots
 *   {@link lz4BlockCompress} / {@link lz4BlockDecompress} (after `ready()`);
 * - lz4-wasm (lz4_flex compiled to wasm), below, kept as the reference implementation and oracle.
 *
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
import type { WasmModule } from '../core/wasm-types.js';
import { sharedCore, type Core } from '../core/core.js';
import { STATUS_OVERFLOW, statusMessage } from '../core/status.js';

/** Largest input of the core compressor (bytes). */
export const LZ4_MAX_INPUT = 0x7e000000;

/**
 * Compress `len` bytes at `srcPtr` of `core`'s memory into `dstPtr` (at most `cap` bytes), in one
 * core call.
 * @param accel acceleration, 1 (the reference default) .. 65536: higher skips faster through
 *   incompressible bytes and finds fewer matches
 * @returns bytes written (header + block), or -1 when the output would exceed `cap` (nothing useful
 *   was written; pass {@link lz4MaxCompressedSize} to never see it)
 * @throws PagewireError INVALID_ARGUMENT for a length or acceleration out of range
 */
export function coreLz4Compress(core: Core, srcPtr: number, len: number, dstPtr: number, cap: number, accel = 1): number {
  const n = core.exports.lz4Compress(srcPtr, len, dstPtr, cap, accel);
  if (n >= 0) return n;
  if (n === STATUS_OVERFLOW) return -1;
  throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `LZ4: ${statusMessage(n)} (length ${len}, acceleration ${accel})`);
}

/**
 * Decode the LZ4 block (with its 4-byte length) of `srcLen` bytes at `srcPtr` into exactly
 * `dstLen` bytes at `dstPtr` of `core`'s memory. Reads and writes stay inside the two ranges.
 * @throws PagewireError LZ4_CORRUPT when the block is malformed, truncated, declares another length
 *   or does not decode to exactly `dstLen` bytes
 */
export function coreLz4Decompress(core: Core, srcPtr: number, srcLen: number, dstPtr: number, dstLen: number): void {
  const n = core.exports.lz4Decompress(srcPtr, srcLen, dstPtr, dstLen);
  if (n !== dstLen) throw new PagewireError(ErrorCode.LZ4_CORRUPT, `LZ4 block rejected: ${statusMessage(n)}`);
}

let warm = false;

/**
 * Run the core's compressor and decoder on small blocks until V8's optimising tier has taken over
 * (a long first call would run entirely in the baseline tier). Once per realm: instances share
 * the compiled module.
 */
export function warmUpCoreLz4(core: Core): void {
  if (warm) return;
  warm = true;
  const n = 4096;
  const cap = lz4MaxCompressedSize(n);
  const src = core.alloc(n);
  const dst = core.alloc(cap);
  const back = core.alloc(n);
  const u8 = core.u8();
  // words, numbers and runs: both the match and the literal paths
  for (let i = 0; i < n; i++) u8[src + i] = (i & 64) !== 0 ? (i * 2654435761) >>> 27 : 'pagewire'.charCodeAt(i & 7);
  for (let round = 0; round < 40; round++) {
    const c = coreLz4Compress(core, src, n - round, dst, cap, 1 + (round & 1));
    core.exports.lz4Decompress(dst, c, back, n - round);
  }
  core.release(back, n);
  core.release(dst, cap);
  core.release(src, n);
}

function checkBytes(data: unknown, name: string): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `${name} must be a Uint8Array`);
}

/**
 * Compress `data` with the core's compressor (lz4-wasm's framing). Needs `ready()`.
 * @param accel acceleration (see {@link coreLz4Compress}), default 1
 * @returns a new array: 4-byte LE length + LZ4 block
 * @throws PagewireError INVALID_ARGUMENT, NOT_READY
 */
export function lz4BlockCompress(data: Uint8Array, accel = 1): Uint8Array {
  checkBytes(data, 'data');
  if (!Number.isInteger(accel) || accel < 1 || accel > 65536) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `acceleration must be an integer in 1..65536, got ${accel}`);
  if (data.byteLength > LZ4_MAX_INPUT) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `LZ4 input of ${data.byteLength} bytes is over ${LZ4_MAX_INPUT}`);
  const core = sharedCore();
  const cap = lz4MaxCompressedSize(data.byteLength);
  const src = core.alloc(data.byteLength);
  const dst = core.alloc(cap);
  try {
    core.u8().set(data, src);
    const n = coreLz4Compress(core, src, data.byteLength, dst, cap, accel);
    return core.u8().slice(dst, dst + n);
  } finally {
    core.release(dst, cap);
    core.release(src, data.byteLength);
  }
}

/**
 * Decode a block from any LZ4 compressor in lz4-wasm's framing with the core's decoder. Needs
 * `ready()`.
 * @param expectedLen the length the block must decode to (checked against its header first)
 * @throws PagewireError LZ4_CORRUPT, INVALID_ARGUMENT, NOT_READY
 */
export function lz4BlockDecompress(block: Uint8Array, expectedLen: number): Uint8Array {
  checkBytes(block, 'block');
  if (!Number.isInteger(expectedLen) || expectedLen < 0 || expectedLen > LZ4_MAX_INPUT) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, `expectedLen must be an integer in 0..${LZ4_MAX_INPUT}`);
  const core = sharedCore();
  const src = core.alloc(block.byteLength);
  const dst = core.alloc(expectedLen);
  try {
    core.u8().set(block, src);
    coreLz4Decompress(core, src, block.byteLength, dst, expectedLen);
    return core.u8().slice(dst, dst + expectedLen);
  } finally {
    core.release(dst, expectedLen);
    core.release(src, block.byteLength);
  }
}

interface Lz4Exports {
  memory: WebAssembly.Memory;
  compress(retptr: number, ptr: number, len: number): void;
  decompress(retptr: number, ptr: number, len: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}

const LZ4_FUNCTIONS = ['compress', 'decompress', '__wbindgen_add_to_stack_pointer', '__wbindgen_malloc', '__wbindgen_free'] as const;

/** An lz4-wasm instance's exports, checked by kind (the module is the one bundled at build time). */
function lz4Exports(instance: WebAssembly.Instance): Lz4Exports {
  const ex: object = instance.exports;
  if (!isLz4Exports(ex)) throw new PagewireError(ErrorCode.WASM_FAILED, 'lz4-wasm lacks the exports pagewire calls');
  return ex;
}

function isLz4Exports(ex: object): ex is Lz4Exports {
  const rec = ex as Record<string, unknown>;
  return rec.memory instanceof WebAssembly.Memory && LZ4_FUNCTIONS.every((name) => typeof rec[name] === 'function');
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

  /** @param mod the compiled lz4-wasm module ({@link loadLz4} compiles it and keeps one instance) */
  constructor(private readonly mod: WasmModule) {
    this.ex = lz4Exports(new WebAssembly.Instance(mod as WebAssembly.Module, IMPORTS));
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
    this.ex = lz4Exports(new WebAssembly.Instance(this.mod as WebAssembly.Module, IMPORTS));
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
