/**
 * The page hasher: per-page xxh64 of guest pages (or of plain bytes), one core call per batch.
 * Pages of a memory that lives in the hashing core are hashed in place; other pages are first
 * copied into a staging arena of the core, a contiguous run at a time ({@link stagePages}).
 * The memory digest (./digest.ts), known-pages advertisements, post-copy's hashes as received and
 * the one-shot `hashPages` all hash through this class.
 */
import { Arena, type Core } from '../core/core.js';
import type { GuestMemory } from './guest-memory.js';

/** Default bytes of pages staged per core call (pages outside the core). */
export const DEFAULT_HASH_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Copy pages [first, first+count) of `memory` into `core` at `dst` (count * pageSize bytes), one
 * `set` per run of pages contiguous in one region.
 */
export function stagePages(memory: GuestMemory, first: number, count: number, core: Core, dst: number): void {
  const ps = memory.pageSize;
  const u8 = core.u8();
  for (let i = 0; i < count; ) {
    const run = memory.run(first + i, count - i);
    u8.set(run, dst + i * ps);
    i += run.byteLength / ps;
  }
}

/** Hashes pages in one core; keeps its arenas between calls (dispose when done). */
export class PageHasher {
  private readonly staging: Arena;
  private readonly out: Arena;

  /**
   * @param core where pages are hashed (in place for a memory that lives in it)
   * @param batchBytes bytes staged per core call for pages outside the core
   */
  constructor(readonly core: Core, private readonly batchBytes = DEFAULT_HASH_BATCH_BYTES) {
    this.staging = new Arena(core);
    this.out = new Arena(core);
  }

  /**
   * Hashes of pages [first, first+count) of `memory` as little-endian u64s at `outPtr` (count * 8
   * bytes in this core).
   */
  hashToCore(memory: GuestMemory, first: number, count: number, seed: bigint, outPtr: number): void {
    const ps = memory.pageSize;
    if (memory.core === this.core) {
      this.core.exports.hashPages(memory.pagePtr(first), ps, count, seed, outPtr);
      return;
    }
    this.staged(count, ps, seed, outPtr, (dst, at, n) => stagePages(memory, first + at, n, this.core, dst));
  }

  /** Hashes of pages [first, first+count) of `memory` into `out[at ..]`. */
  hash(memory: GuestMemory, first: number, count: number, seed: bigint, out: BigUint64Array, at = first): void {
    this.toArray(count, memory.pageSize, out, at, (ptr, b, n) => this.hashToCore(memory, first + b, n, seed, ptr));
  }

  /** Hashes of every page of `memory`. */
  hashAll(memory: GuestMemory, seed: bigint): BigUint64Array {
    const out = new BigUint64Array(memory.pageCount);
    this.hash(memory, 0, memory.pageCount, seed, out, 0);
    return out;
  }

  /** Hashes of the listed pages of `memory` (any order): `out[pages[k]]` = hash of page `pages[k]`. */
  hashList(memory: GuestMemory, pages: ArrayLike<number>, seed: bigint, out: BigUint64Array): void {
    const n = pages.length;
    if (n === 0) return;
    const ps = memory.pageSize;
    const inCore = memory.core === this.core;
    const ptr = this.out.ensure(n * 8);
    this.staged(n, ps, seed, ptr, (dst, at, k) => {
      const u8 = this.core.u8();
      for (let i = 0; i < k; i++) {
        const p = pages[at + i]!;
        if (inCore) u8.copyWithin(dst + i * ps, memory.pagePtr(p), memory.pagePtr(p) + ps);
        else u8.set(memory.page(p), dst + i * ps);
      }
    });
    const dv = this.core.view();
    for (let i = 0; i < n; i++) out[pages[i]!] = dv.getBigUint64(ptr + i * 8, true);
  }

  /** Hashes of the whole pages of `data` (anywhere in JS memory) into `out[0 ..]`. */
  hashBytes(data: Uint8Array, pageSize: number, seed: bigint, out: BigUint64Array): void {
    const count = Math.floor(data.byteLength / pageSize);
    this.toArray(count, pageSize, out, 0, (ptr, b, n) => this.staged(n, pageSize, seed, ptr, (dst, at, k) => {
      this.core.u8().set(data.subarray((b + at) * pageSize, (b + at + k) * pageSize), dst);
    }));
  }

  /** Give the arenas back. */
  dispose(): void {
    this.staging.dispose();
    this.out.dispose();
  }

  private batchPages(pageSize: number): number {
    return Math.max(1, Math.floor(this.batchBytes / pageSize));
  }

  /** `count` pages in batches: `fill` copies pages [at, at+n) to `dst`, then one core call hashes them. */
  private staged(count: number, pageSize: number, seed: bigint, outPtr: number, fill: (dst: number, at: number, n: number) => void): void {
    const per = this.batchPages(pageSize);
    const dst = this.staging.ensure(Math.min(per, count) * pageSize);
    for (let b = 0; b < count; b += per) {
      const n = Math.min(per, count - b);
      fill(dst, b, n);
      this.core.exports.hashPages(dst, pageSize, n, seed, outPtr + b * 8);
    }
  }

  /** `count` hashes in batches: `hashTo` writes hashes of pages [b, b+n) at a core pointer, copied to `out[at + b ..]`. */
  private toArray(count: number, pageSize: number, out: BigUint64Array, at: number, hashTo: (ptr: number, b: number, n: number) => void): void {
    const per = this.batchPages(pageSize);
    const ptr = this.out.ensure(Math.min(per, count) * 8);
    for (let b = 0; b < count; b += per) {
      const n = Math.min(per, count - b);
      hashTo(ptr, b, n);
      out.set(new BigUint64Array(this.core.exports.memory.buffer, ptr, n), at + b);
    }
  }
}
