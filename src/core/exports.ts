import type { WasmMemory } from './wasm-types.js';

/**
 * The raw exports of the AssemblyScript core (assembly/index.ts). Pointers are byte offsets into
 * `memory`; i64 values arrive as signed BigInt (wrap with BigInt.asUintN(64, x)); results `>= 0`
 * are byte counts, `< 0` a status from assembly/status.ts (mirrored in ./status.ts).
 * Keep this interface in step with assembly/index.ts: test/core-exports.test.ts checks it.
 */
export interface CoreExports {
  readonly memory: WasmMemory;
  /** First free byte after the core's static data. */
  heapBase(): number;

  /** xxHash64 of `len` bytes at `ptr` (signed BigInt: wrap with BigInt.asUintN(64, x)). */
  xxh64(ptr: number, len: number, seed: bigint): bigint;
  /** Start a streaming xxHash64 in the 48-byte, 8-aligned state at `state`. */
  xxh64Init(state: number, seed: bigint): void;
  /** Feed `len` bytes (a multiple of 32) into the streaming state. */
  xxh64Update(state: number, ptr: number, len: number): void;
  /** Feed the last `len` bytes (any length) and return the hash of everything fed. */
  xxh64Digest(state: number, ptr: number, len: number): bigint;
  /** One xxHash64 per page, little-endian u64 at `outPtr + 8k`. */
  hashPages(ptr: number, pageSize: number, count: number, seed: bigint, outPtr: number): void;
  /**
   * `table[idx[k]] = xxh64(page)` (seed 0) for k < count; the page is at `ptrs[k]`, or at
   * `base + idx[k] * pageSize` when `ptrs` is 0 (u32 arrays). Returns count, or a negative status
   * (nothing written) when an index is >= pageCount.
   */
  hashPageList(base: number, pageSize: number, idx: number, ptrs: number, count: number, pageCount: number, table: number): number;

  /** 1 when `len` bytes at `ptr` are all zero, else 0. */
  isZero(ptr: number, len: number): number;
  /** 1/0 per page at `outPtr + k`; returns the number of zero pages. */
  zeroPages(ptr: number, pageSize: number, count: number, outPtr: number): number;

  /** XBZRLE-encode; bytes written, 0 identical, -1 overflow, other negatives: status. */
  xbzrleEncode(oldPtr: number, newPtr: number, len: number, outPtr: number, limit: number): number;
  /** Apply an XBZRLE stream in place (validated first); page bytes covered, or a negative status. */
  xbzrleDecode(inPtr: number, inLen: number, pagePtr: number, pageLen: number): number;
  /** Validate an XBZRLE stream without writing; page bytes covered, or a negative status. */
  xbzrleCheck(inPtr: number, inLen: number, pageLen: number): number;

  /** RLE-encode; bytes written, -1 when it does not fit `limit`. */
  rleEncode(srcPtr: number, len: number, outPtr: number, limit: number): number;
  /** Decode an RLE stream into exactly `outLen` bytes (validated first); outLen or a negative status. */
  rleDecode(inPtr: number, inLen: number, outPtr: number, outLen: number): number;
  /** Validate an RLE stream without writing; outLen or a negative status. */
  rleCheck(inPtr: number, inLen: number, outLen: number): number;
  /** Largest RLE encoding of `len` bytes. */
  rleMaxEncodedSize(len: number): number;

  /** LZ4-compress `len` bytes into `cap` bytes at `dst` (u32 LE length + block); bytes written, -1 overflow. */
  lz4Compress(src: number, len: number, dst: number, cap: number, accel: number): number;
  /** Decode a block (with its u32 length) into exactly `dstLen` bytes; dstLen or a negative status. */
  lz4Decompress(src: number, srcLen: number, dst: number, dstLen: number): number;
  /** Largest output of lz4Compress for `len` input bytes. */
  lz4MaxCompressedSize(len: number): number;

  /**
   * Encode `count` pages into page records at `outPtr` (EncState at `st`, see ./layout.ts): page
   * `idx[k]` with its bytes at `ptrs[k]` (u32 arrays). Bytes written, STATUS_OVERFLOW when
   * `outLimit` is too small, STATUS_BAD_ARGUMENT when a page needs RAW and F_RAW is clear.
   */
  encodeBatch(st: number, idxPtr: number, ptrPtr: number, count: number, outPtr: number, outLimit: number, flags: number): number;
  /** Forget the delta-cache entries of `count` pages listed at `idxPtr` (indices >= pageCount ignored). */
  cacheForget(st: number, idxPtr: number, count: number): void;
  /** Pages the delta cache holds now. */
  cacheUsed(st: number): number;
  /** Validate a block of records and list (page, ref, codec) per record (DecState at `st`); records or a negative status. */
  decodeScan(st: number, blk: number, len: number): number;
  /** Apply a block of records to guest memory at DEC_BASE; records or a negative status. */
  decodeApply(st: number, blk: number, len: number): number;
}

/**
 * Every export of the core by kind: the compiler checks that this table names exactly the
 * members of {@link CoreExports}, test/core-exports.test.ts that it names exactly the module's
 * exports, and {@link isCoreExports} checks an instance against it at load.
 */
export const CORE_EXPORT_KINDS = {
  memory: 'memory', heapBase: 'function',
  xxh64: 'function', xxh64Init: 'function', xxh64Update: 'function', xxh64Digest: 'function',
  hashPages: 'function', hashPageList: 'function', isZero: 'function', zeroPages: 'function',
  xbzrleEncode: 'function', xbzrleDecode: 'function', xbzrleCheck: 'function',
  rleEncode: 'function', rleDecode: 'function', rleCheck: 'function', rleMaxEncodedSize: 'function',
  lz4Compress: 'function', lz4Decompress: 'function', lz4MaxCompressedSize: 'function',
  encodeBatch: 'function', cacheForget: 'function', cacheUsed: 'function', decodeScan: 'function', decodeApply: 'function',
} as const satisfies Record<keyof CoreExports, 'memory' | 'function'>;

/** Exports the module has beyond {@link CoreExports} (AssemblyScript's start function). */
export const CORE_EXTRA_EXPORTS: readonly string[] = ['_initialize'];

/**
 * Whether an instance's exports have every member of {@link CoreExports} with the right kind
 * (functions are checked by presence and kind, not signature: the module is ours, built with it).
 */
export function isCoreExports(exports: object): exports is CoreExports {
  const ex = exports as Record<string, unknown>;
  for (const [name, kind] of Object.entries(CORE_EXPORT_KINDS)) {
    const v = ex[name];
    if (kind === 'function' ? typeof v !== 'function' : !(v instanceof WebAssembly.Memory)) return false;
  }
  return true;
}
