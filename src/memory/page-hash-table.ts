/**
 * The incremental memory digest: a table of per-page xxh64 hashes (seed 0) in core memory, kept
 * current as pages are encoded (source) or applied (target), so the switch-over digest costs one
 * core call over 8 bytes per page instead of hashing the whole guest (about 130 ms per GiB).
 *
 *   digest = xxh64(seed 0) over the little-endian u64 hashes of pages 0..pageCount-1, which is
 *   what memoryDigest (./digest.ts) computes from memory.
 *
 * Invariant: for every page marked `hashed`, `table[p]` is the hash of the page's content as of
 * the last update that named it. The owner names a page whenever its content may have changed
 * (the source: every page it encodes, which in pre-copy covers every page the dirty log reports;
 * the target: every page a record wrote). Pages never named are hashed at {@link digest}, so a
 * table is never wrong for pages it was not told about, only slower.
 */
import { Arena, type Core } from '../core/core.js';
import { PagewireError, ErrorCode } from '../errors.js';
import type { GuestMemory } from './guest-memory.js';
import { hex64 } from './digest.js';


/** Pages hashed per core call when pages must be staged (external placement). */
const STAGE_PAGES = 256;

/** Per-page hashes of one guest memory, in `core`'s memory. */
export class PageHashTable {
  /** Pages whose hash is in the table (1) or still to compute (0). */
  private readonly hashed: Uint8Array;
  private unhashed: number;
  private readonly tablePtr: number;
  private readonly idx: Arena;
  private readonly ptrs: Arena;
  private readonly stage: Arena;
  private disposed = false;

  /**
   * @param memory the guest memory the table describes
   * @param core where the table lives; pages are hashed in place when `memory` is in this core
   */
  constructor(readonly memory: GuestMemory, readonly core: Core) {
    this.hashed = new Uint8Array(memory.pageCount);
    this.unhashed = memory.pageCount;
    this.tablePtr = core.alloc(memory.pageCount * 8);
    this.idx = new Arena(core, STAGE_PAGES * 4);
    this.ptrs = new Arena(core, STAGE_PAGES * 4);
    // sized once: updates never grow core memory (callers may hold views into it)
    this.stage = new Arena(core, memory.core === core ? 0 : STAGE_PAGES * memory.pageSize);
  }

  /** Pages not hashed yet (hashed by the next {@link digest}). */
  get pendingPages(): number {
    return this.unhashed;
  }

  /**
   * Record the hashes of pages whose bytes are in this table's core now: page `idx[k]` at
   * `ptrs[k]` (u32 arrays of `count` entries in core memory, e.g. an encoder's batch), or, with
   * `ptrsPtr` 0, in place in guest memory (which must then live in this core). `indices` holds
   * the same page numbers in JS (for the bookkeeping of hashed pages).
   * @throws PagewireError PAGE_OUT_OF_RANGE when an index is outside the guest (nothing written)
   */
  updateFromCore(idxPtr: number, ptrsPtr: number, count: number, indices: ArrayLike<number>): void {
    if (ptrsPtr === 0 && this.memory.core !== this.core) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'page hash table: pages are not in this core');
    const base = ptrsPtr === 0 ? this.memory.basePtr : 0;
    this.check(this.core.exports.hashPageList(base, this.memory.pageSize, idxPtr, ptrsPtr, count, this.memory.pageCount, this.tablePtr), count);
    this.mark(indices, 0, count);
  }

  /**
   * The table's pointer when it lives in `core` (an encoder there writes the hashes of the pages it
   * encodes straight into it, then calls {@link markWritten}), else 0.
   */
  tableIn(core: Core): number {
    return core === this.core && !this.disposed ? this.tablePtr : 0;
  }

  /** The table's entries for `indices` were written in core (see {@link tableIn}). */
  markWritten(indices: ArrayLike<number>): void {
    this.mark(indices, 0, indices.length);
  }

  /**
   * Record the hashes of pages `indices[start .. start+count)` as they are in guest memory now.
   * In place for guest memory in this core; external pages are copied into the core in batches.
   * @throws PagewireError PAGE_OUT_OF_RANGE when an index is outside the guest (nothing written for that batch)
   */
  update(indices: ArrayLike<number>, start = 0, count = indices.length - start): void {
    const m = this.memory;
    const ps = m.pageSize;
    const inPlace = m.core === this.core;
    for (let b = 0; b < count; b += STAGE_PAGES) {
      const n = Math.min(STAGE_PAGES, count - b);
      const idxPtr = this.idx.ensure(n * 4);
      let ptrsPtr = 0;
      const stagePtr = inPlace ? 0 : this.stage.ensure(n * ps);
      if (!inPlace) ptrsPtr = this.ptrs.ensure(n * 4);
      const buf = this.core.exports.memory.buffer;
      const idx = new Uint32Array(buf, idxPtr, n);
      const ptrs = inPlace ? null : new Uint32Array(buf, ptrsPtr, n);
      const u8 = inPlace ? null : this.core.u8();
      for (let k = 0; k < n; k++) {
        const p = indices[start + b + k]!;
        if (!(p >= 0 && p < m.pageCount)) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, `page ${p} is outside guest memory (0..${m.pageCount - 1})`);
        idx[k] = p;
        if (ptrs) {
          ptrs[k] = stagePtr + k * ps;
          u8!.set(m.page(p), stagePtr + k * ps);
        }
      }
      this.check(this.core.exports.hashPageList(inPlace ? m.basePtr : 0, ps, idxPtr, ptrsPtr, n, m.pageCount, this.tablePtr), n);
      this.mark(indices, start + b, n);
    }
  }

  /**
   * Record, for every page not hashed yet, the hash of an all-zero page, without reading it: for
   * a memory known to be zero wherever nothing was reported (fresh core memory), whose untouched
   * pages would otherwise each cost a page fault to hash.
   */
  assumeZero(): void {
    if (this.unhashed === 0) return;
    const ps = this.memory.pageSize;
    const zero = this.core.allocZeroed(ps);
    const h = BigInt.asUintN(64, this.core.exports.xxh64(zero, ps, 0n));
    this.core.release(zero, ps);
    const table = new BigUint64Array(this.core.exports.memory.buffer, this.tablePtr, this.memory.pageCount);
    const hashed = this.hashed;
    for (let p = 0; p < hashed.length; p++) {
      if (hashed[p] === 0) { table[p] = h; hashed[p] = 1; }
    }
    this.unhashed = 0;
  }

  /** Forget every hash (the memory changed in ways nobody reported, e.g. a resume from scratch). */
  invalidate(): void {
    this.hashed.fill(0);
    this.unhashed = this.memory.pageCount;
  }

  /**
   * The memory digest (16 hex chars), equal to memoryDigest(memory) when every change was
   * reported. Hashes the pages never reported first.
   */
  digest(): string {
    if (this.disposed) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'page hash table disposed');
    if (this.unhashed > 0) this.hashUnhashed();
    return hex64(this.core.exports.xxh64(this.tablePtr, this.memory.pageCount * 8, 0n));
  }

  /**
   * Milliseconds the switch-over digest takes once every page is hashed (one pass over the table),
   * measured without hashing the pages not reported yet.
   */
  digestCostMs(clock: () => number = () => performance.now()): number {
    if (this.disposed) throw new PagewireError(ErrorCode.INVALID_ARGUMENT, 'page hash table disposed');
    const t = clock();
    this.core.exports.xxh64(this.tablePtr, this.memory.pageCount * 8, 0n);
    return clock() - t;
  }

  /** A copy of the hashes (after hashing what was never reported). */
  hashes(): BigUint64Array {
    if (this.unhashed > 0) this.hashUnhashed();
    return new BigUint64Array(this.core.exports.memory.buffer.slice(this.tablePtr, this.tablePtr + this.memory.pageCount * 8));
  }

  /** Give the table's core memory back. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.core.release(this.tablePtr, this.memory.pageCount * 8);
    this.idx.dispose();
    this.ptrs.dispose();
    this.stage.dispose();
  }

  private hashUnhashed(): void {
    const list: number[] = [];
    for (let p = 0; p < this.hashed.length; p++) if (this.hashed[p] === 0) list.push(p);
    this.update(list);
  }

  private mark(indices: ArrayLike<number>, start: number, count: number): void {
    const h = this.hashed;
    for (let k = start; k < start + count; k++) {
      const p = indices[k]!;
      if (h[p] === 0) { h[p] = 1; this.unhashed--; }
    }
  }

  private check(status: number, count: number): void {
    if (status !== count) throw new PagewireError(ErrorCode.PAGE_OUT_OF_RANGE, 'page hash table: a page index is outside the guest');
  }
}
