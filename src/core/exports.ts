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

  [name: string]: unknown;
}
